"""The assistant object and its create/update parameters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import Metadata, ObjectModel, RequestModel
from .tools import ResponseFormat, ToolResources, Tools

Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(ge=0, le=1)]
Name = Annotated[str, Field(max_length=256)]
Description = Annotated[str, Field(max_length=512)]
Instructions = Annotated[str, Field(max_length=256_000)]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class _AssistantSettings(RequestModel):
    """Fields that create and update share; update makes every one optional."""

    name: Name | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class AssistantCreateParams(_AssistantSettings):
    model: Annotated[str, Field(min_length=1)]
    tools: Tools = []


class AssistantUpdateParams(_AssistantSettings):
    model: Annotated[str, Field(min_length=1)] | None = None
    tools: Tools | None = None


class Assistant(ObjectModel):
    id: str
    object: Literal["assistant"] = "assistant"
    created_at: int
    name: str | None = None
    description: str | None = None
    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] = []
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, str] = {}
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = "auto"
    reasoning_effort: str | None = None
