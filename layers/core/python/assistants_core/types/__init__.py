"""Pydantic models mirroring OpenAI's Assistants API v2 objects, one module per object."""

from .assistant import Assistant, AssistantCreateParams, AssistantUpdateParams
from .common import DeletedObject, ListPage
from .message import Message, MessageCreateParams, MessageUpdateParams
from .run import (
    Run,
    RunCreateParams,
    RunUpdateParams,
    SubmitToolOutputsParams,
    ThreadAndRunCreateParams,
    Usage,
)
from .run_step import RunStep
from .thread import Thread, ThreadCreateParams, ThreadUpdateParams

__all__ = [
    "Assistant",
    "AssistantCreateParams",
    "AssistantUpdateParams",
    "DeletedObject",
    "ListPage",
    "Message",
    "MessageCreateParams",
    "MessageUpdateParams",
    "Run",
    "RunCreateParams",
    "RunStep",
    "RunUpdateParams",
    "SubmitToolOutputsParams",
    "Thread",
    "ThreadAndRunCreateParams",
    "ThreadCreateParams",
    "ThreadUpdateParams",
    "Usage",
]
