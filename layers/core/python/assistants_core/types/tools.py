"""Tool definitions, tool resources and response formats (shared by assistants and runs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from .common import Metadata, ObjectModel, RequestModel
from .vector_store import MAX_STORE_FILE_IDS, ChunkingStrategy


class FunctionDefinition(RequestModel):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(RequestModel):
    type: Literal["function"]
    function: FunctionDefinition


class FileSearchRankingOptions(RequestModel):
    ranker: Literal["auto", "default_2024_08_21"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)]


class FileSearchSettings(RequestModel):
    max_num_results: Annotated[int, Field(ge=1, le=50)] | None = None
    ranking_options: FileSearchRankingOptions | None = None


class FileSearchTool(RequestModel):
    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class CodeInterpreterTool(RequestModel):
    type: Literal["code_interpreter"]


# The model calls file_search and code_interpreter as functions of these names, so a function of
# the same name beside the tool could not be told apart.
_TOOL_FUNCTIONS = {FileSearchTool: "file_search", CodeInterpreterTool: "python"}


def _check_tools(tools: list[Any] | None) -> list[Any] | None:
    for kind, name in _TOOL_FUNCTIONS.items():
        if any(isinstance(tool, kind) for tool in tools or []) and any(
            isinstance(tool, FunctionTool) and tool.function.name == name for tool in tools or []
        ):
            label = "file_search" if kind is FileSearchTool else "code_interpreter"
            raise ValueError(f"a function named '{name}' cannot be used together with the {label} tool")
    return tools


Tool = Annotated[FunctionTool | FileSearchTool | CodeInterpreterTool, Field(discriminator="type")]
Tools = Annotated[list[Tool], Field(max_length=128), AfterValidator(_check_tools)]
RunTools = Annotated[list[Tool], Field(max_length=20), AfterValidator(_check_tools)]  # a run's override


class CodeInterpreterResources(RequestModel):
    file_ids: Annotated[list[str], Field(max_length=20)] = []


class VectorStoreHelper(RequestModel):
    """``tool_resources.file_search.vector_stores``: a store to create from files, on the spot."""

    file_ids: Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STORE_FILE_IDS)] = []
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None


class FileSearchResources(RequestModel):
    vector_store_ids: Annotated[list[str], Field(max_length=1)] = []
    vector_stores: Annotated[list[VectorStoreHelper], Field(max_length=1)] | None = None

    @model_validator(mode="after")
    def _one_store(self) -> FileSearchResources:
        if self.vector_store_ids and self.vector_stores:
            raise ValueError("give vector_store_ids or vector_stores, not both: a file_search tool takes one store")
        return self


class ToolResources(RequestModel):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


class TextFormat(RequestModel):
    type: Literal["text"]


class JsonObjectFormat(RequestModel):
    type: Literal["json_object"]


class JsonSchemaSpec(RequestModel):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None


class JsonSchemaFormat(RequestModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = (
    Literal["auto"] | Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]
)


class ToolChoiceFunction(RequestModel):
    name: str


class NamedToolChoice(RequestModel):
    type: Literal["function", "file_search", "code_interpreter"]
    function: ToolChoiceFunction | None = None


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ToolResourcesObject(ObjectModel):
    """tool_resources as returned: whatever was stored, in OpenAI's shape."""

    code_interpreter: dict[str, Any] | None = None
    file_search: dict[str, Any] | None = None
