"""Pydantic models mirroring OpenAI's Assistants API v2 objects, one module per object."""

from .assistant import Assistant, AssistantCreateParams, AssistantUpdateParams
from .common import DeletedObject, ListPage
from .message import Message, MessageCreateParams, MessageUpdateParams
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
    "Thread",
    "ThreadCreateParams",
    "ThreadUpdateParams",
]
