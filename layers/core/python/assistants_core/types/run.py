"""The run object and the parameters of create, create-and-run, update and submit_tool_outputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .assistant import Instructions, Temperature, TopP
from .common import Metadata, ObjectModel, RequestModel
from .message import MessageCreateParams
from .run_status import TERMINAL_STATUSES, RunStatus
from .thread import ThreadCreateParams
from .tools import ResponseFormat, RunTools, ToolChoice, ToolResources


class TruncationStrategy(RequestModel):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1)] | None = None


TokenLimit = Annotated[int, Field(ge=256)]


class _RunSettings(RequestModel):
    """Settings shared by create-run and create-thread-and-run."""

    model: Annotated[str, Field(min_length=1)] | None = None
    instructions: Instructions | None = None
    tools: RunTools | None = None
    metadata: Metadata = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stream: bool | None = None
    max_prompt_tokens: TokenLimit | None = None
    max_completion_tokens: TokenLimit | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


class RunCreateParams(_RunSettings):
    assistant_id: Annotated[str, Field(min_length=1)]
    additional_instructions: str | None = None
    additional_messages: Annotated[list[MessageCreateParams], Field(max_length=32)] | None = None


class ThreadAndRunCreateParams(_RunSettings):
    assistant_id: Annotated[str, Field(min_length=1)]
    thread: ThreadCreateParams | None = None
    tool_resources: ToolResources | None = None


class RunUpdateParams(RequestModel):
    metadata: Metadata = None


class ToolOutput(RequestModel):
    tool_call_id: Annotated[str, Field(min_length=1)]
    output: str


class SubmitToolOutputsParams(RequestModel):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None


class Usage(ObjectModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        prompt = self.prompt_tokens + other.prompt_tokens
        completion = self.completion_tokens + other.completion_tokens
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class LastError(ObjectModel):
    code: Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]
    message: str


class Run(ObjectModel):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatus
    required_action: dict[str, Any] | None = None
    last_error: LastError | None = None
    expires_at: int | None = None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_details: dict[str, Any] | None = None
    model: str
    instructions: str = ""
    tools: list[dict[str, Any]] = []
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, str] = {}
    usage: Usage | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: dict[str, Any] = {"type": "auto", "last_messages": None}
    response_format: Any = "auto"
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning_effort: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def required_call_ids(self) -> list[str]:
        calls = ((self.required_action or {}).get("submit_tool_outputs") or {}).get("tool_calls") or []
        return [call["id"] for call in calls]
