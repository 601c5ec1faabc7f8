"""Names of the Server-Sent Events of a streamed run, as OpenAI sends them."""

from __future__ import annotations

THREAD_CREATED = "thread.created"
RUN_EVENT = "thread.run.{status}"  # created, queued, in_progress, requires_action, completed, ...
STEP_CREATED = "thread.run.step.created"
STEP_IN_PROGRESS = "thread.run.step.in_progress"
STEP_DELTA = "thread.run.step.delta"
STEP_COMPLETED = "thread.run.step.completed"
STEP_FAILED = "thread.run.step.failed"
STEP_CANCELLED = "thread.run.step.cancelled"
STEP_EXPIRED = "thread.run.step.expired"
MESSAGE_CREATED = "thread.message.created"
MESSAGE_IN_PROGRESS = "thread.message.in_progress"
MESSAGE_DELTA = "thread.message.delta"
MESSAGE_COMPLETED = "thread.message.completed"
MESSAGE_INCOMPLETE = "thread.message.incomplete"
ERROR = "error"
DONE = "done"

DELTA_EVENTS = frozenset({STEP_DELTA, MESSAGE_DELTA})

# A stream ends after one of these: the run either finished or waits for the client.
STREAM_END_EVENTS = frozenset(
    {
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.incomplete",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        ERROR,
    }
)


def run_event(status: str) -> str:
    return RUN_EVENT.format(status=status)
