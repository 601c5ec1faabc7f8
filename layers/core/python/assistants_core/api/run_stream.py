"""A run's SSE response, and what finds it again when a request is retried.

Every streamed answer (``runs.create``, ``threads.create_and_run``, ``submit_tool_outputs``
with ``stream: true``) is a tail of the run's event log from one sequence number on. That
position, a :class:`RunStream`, is what an ``Idempotency-Key`` keeps for such a request
(:mod:`.idempotency`): a retry streams the same run's events from the same place, and starts
nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..repository import Repository
from ..services.run_events import stream_events
from .idempotency import RUN_STREAMS_SCOPE_KEY

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


@dataclass(frozen=True)
class RunStream:
    thread_id: str
    run_id: str
    after_seq: int
    search_content: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunStreamResponse(StreamingResponse):
    """SSE of a run's events after ``stream.after_seq``; tells the request's scope which."""

    def __init__(self, repo: Repository, tenant: str, stream: RunStream, headers: dict[str, str] | None = None) -> None:
        events = stream_events(
            repo,
            tenant,
            stream.run_id,
            after_seq=stream.after_seq,
            thread_id=stream.thread_id,
            search_content=stream.search_content,
        )
        super().__init__(events, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slot = scope.get(RUN_STREAMS_SCOPE_KEY)
        if isinstance(slot, list):
            slot.append(self.stream)
        await super().__call__(scope, receive, send)
