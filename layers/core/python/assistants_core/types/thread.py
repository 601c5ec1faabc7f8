"""The thread object and its create/update parameters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import Metadata, ObjectModel, RequestModel
from .message import MessageCreateParams
from .tools import ToolResources


class ThreadCreateParams(RequestModel):
    messages: Annotated[list[MessageCreateParams], Field(max_length=32)] = []
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class ThreadUpdateParams(RequestModel):
    tool_resources: ToolResources | None = None
    metadata: Metadata = None


class Thread(ObjectModel):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, str] = {}
