"""Pydantic models mirroring OpenAI's Assistants API v2 objects, one module per object.

The names below are imported from their module when first used (PEP 562), not with the
package: importing any one module of it (``types.model``) would otherwise build every model,
and each function needs only its own (the models function none of these).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULES = {
    "Assistant": "assistant",
    "AssistantCreateParams": "assistant",
    "AssistantUpdateParams": "assistant",
    "DeletedObject": "common",
    "ListPage": "common",
    "Message": "message",
    "MessageCreateParams": "message",
    "MessageUpdateParams": "message",
    "Run": "run",
    "RunCreateParams": "run",
    "RunStep": "run_step",
    "RunUpdateParams": "run",
    "SubmitToolOutputsParams": "run",
    "Thread": "thread",
    "ThreadAndRunCreateParams": "run",
    "ThreadCreateParams": "thread",
    "ThreadUpdateParams": "thread",
    "Usage": "run",
}
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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:  # a submodule (``from ..types import events``) is imported as usual
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
