"""The run step object: a message creation or a round of tool calls."""

from __future__ import annotations

from typing import Any, Literal

from .common import ObjectModel
from .run import LastError, Usage

RunStepStatus = Literal["in_progress", "cancelled", "failed", "completed", "expired"]


class RunStep(ObjectModel):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: Literal["message_creation", "tool_calls"]
    status: RunStepStatus
    step_details: dict[str, Any]
    last_error: LastError | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    metadata: dict[str, str] = {}
    usage: Usage | None = None

    def tool_calls(self) -> list[dict[str, Any]]:
        return list(self.step_details.get("tool_calls") or [])


def without_search_content(step_details: dict[str, Any]) -> dict[str, Any]:
    """A step's details with the results' ``content`` left out (shown only on ``include[]``)."""
    calls = step_details.get("tool_calls")
    if not calls or not any(c.get("type") == "file_search" for c in calls):
        return step_details
    stripped = []
    for call in calls:
        if call.get("type") == "file_search" and call.get("file_search", {}).get("results"):
            results = [{k: v for k, v in r.items() if k != "content"} for r in call["file_search"]["results"]]
            call = {**call, "file_search": {**call["file_search"], "results": results}}
        stripped.append(call)
    return {**step_details, "tool_calls": stripped}
