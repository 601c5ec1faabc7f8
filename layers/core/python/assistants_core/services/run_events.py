"""The run's event log: what a streamed run sends, appended to DynamoDB as it happens.

Writers (the API that creates the run, the agent step, cancel) append events; each append is
one numbered log item (or a few, if very large). The streaming endpoint tails the log with
consistent reads and turns it into SSE. Decoupling the
two is what lets a client disconnect without stopping the run, and lets a stream resume
after ``submit_tool_outputs`` from where the run continues.

Deltas are batched: the first delta of a message or tool call is written at once (time to
first token is what users feel), later ones are merged and written at most every
``DELTA_FLUSH_INTERVAL_MS`` (100 ms), which bounds the write rate per run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from ..config import Settings, settings
from ..errors import APIError, InvalidRequestError, ServerError
from ..ids import now
from ..repository import RUN_PREFIX, ConcurrentModification, EventSequenceTaken, Repository, run_log_pk, thread_pk
from ..types.events import (
    DELTA_EVENTS,
    DONE,
    ERROR,
    MESSAGE_COMPLETED,
    MESSAGE_DELTA,
    MESSAGE_INCOMPLETE,
    STEP_CANCELLED,
    STEP_COMPLETED,
    STEP_CREATED,
    STEP_DELTA,
    STEP_EXPIRED,
    STEP_FAILED,
    STEP_IN_PROGRESS,
    STREAM_END_EVENTS,
    run_event,
)
from ..types.run import TERMINAL_STATUSES, Run
from ..types.run_step import without_search_content

EVENT_RETENTION_SECONDS = 7 * 24 * 3600
# A run in one of these has logged the event that ends a stream (or should have).
STREAM_END_STATUSES = TERMINAL_STATUSES | {"requires_action"}
MESSAGE_ENDS = (MESSAGE_COMPLETED, MESSAGE_INCOMPLETE)
# Events whose data is a whole run step (file_search results show their content on include[] only).
STEP_OBJECT_EVENTS = frozenset(
    {STEP_CREATED, STEP_IN_PROGRESS, STEP_COMPLETED, STEP_FAILED, STEP_CANCELLED, STEP_EXPIRED}
)
logger = Logger()
Event = tuple[str, dict[str, Any]]


def _as_data(data: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return data.model_dump(mode="json") if isinstance(data, BaseModel) else data


class RunEventWriter:
    """Appends a run's events as numbered log items; safe to use from several threads."""

    def __init__(self, repo: Repository, tenant: str, run_id: str, *, next_seq: int | None = None) -> None:
        """``next_seq`` is where the log is believed to continue (None: look it up). A stale
        guess costs one failed conditional write, then a lookup."""
        self.repo = repo
        self.pk = run_log_pk(tenant, run_id)
        self._next_seq = next_seq
        self._lock = threading.RLock()
        self._pending: list[Event] = []
        self._last_flush = 0.0
        self._delta_started: set[str] = set()
        self._timer: threading.Timer | None = None
        self.flush_interval = settings().delta_flush_interval_ms / 1000

    @property
    def last_seq(self) -> int:
        with self._lock:
            if self._next_seq is None:
                self._next_seq = self.repo.last_event_seq(self.pk) + 1
            return self._next_seq - 1

    @property
    def known_last_seq(self) -> int:
        """The last sequence number written, as far as this writer knows without a read (0: unknown)."""
        with self._lock:
            return self._next_seq - 1 if self._next_seq is not None else 0

    def emit(self, name: str, data: BaseModel | dict[str, Any]) -> None:
        """Append one event now, after any deltas still waiting."""
        self.emit_many([(name, _as_data(data))])

    def emit_many(self, events: list[Event], *, with_ops: list[dict[str, Any]] | None = None) -> None:
        """Append events (after any waiting deltas) in one write, together with ``with_ops``.

        Raises ConcurrentModification when one of ``with_ops``' conditions fails; the waiting
        deltas are kept for the next write.
        """
        with self._lock:
            pending, self._pending = self._pending, []
            self._cancel_timer()
            try:
                self._append(pending + events, with_ops)
            except BaseException:
                self._pending = pending + self._pending
                raise
            for name, data in events:
                if name in DELTA_EVENTS:
                    self._delta_started.add(f"{name}:{data['id']}")

    def delta(self, name: str, data: dict[str, Any]) -> None:
        """Queue a delta; written at once if it is the first of its object, else batched."""
        assert name in DELTA_EVENTS, name
        with self._lock:
            key = f"{name}:{data['id']}"
            if key not in self._delta_started:
                self._delta_started.add(key)
                self._pending.append((name, copy.deepcopy(data)))
                return self.flush()
            if not _merge_into(self._pending, name, data):
                self._pending.append((name, copy.deepcopy(data)))
            wait = self.flush_interval - (time.monotonic() - self._last_flush)
            if wait <= 0:
                self.flush()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._cancel_timer()
            if self._pending:
                batch, self._pending = self._pending, []
                self._append(batch)

    def close(self) -> None:
        self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _append(self, events: list[Event], with_ops: list[dict[str, Any]] | None = None) -> None:
        if not events:
            return
        ttl = now() + EVENT_RETENTION_SECONDS
        for _ in range(10):
            first = self.last_seq + 1
            try:
                written = self.repo.append_events(self.pk, first, events, ttl=ttl, with_ops=with_ops)
            except EventSequenceTaken:
                self._next_seq = None  # another writer (cancel) took the number: re-read the end
                continue
            self._next_seq = first + written
            self._last_flush = time.monotonic()
            return
        raise ConcurrentModification(f"{self.pk}: could not append events")


def _merge_into(pending: list[Event], name: str, data: dict[str, Any]) -> bool:
    """Merge a delta into the last pending event when it continues the same object."""
    if not pending:
        return False
    last_name, last = pending[-1]
    if last_name != name or last["id"] != data["id"]:
        return False
    if name == MESSAGE_DELTA:
        return _merge_message_delta(last, data)
    if name == STEP_DELTA:
        return _merge_tool_call_delta(last, data)
    return False


def _merge_message_delta(into: dict[str, Any], data: dict[str, Any]) -> bool:
    old_parts, new_parts = into["delta"]["content"], data["delta"]["content"]
    if len(new_parts) != 1 or not old_parts or old_parts[-1]["index"] != new_parts[0]["index"]:
        return False
    if old_parts[-1]["type"] != "text" or new_parts[0]["type"] != "text":
        return False
    old_parts[-1]["text"]["value"] += new_parts[0]["text"]["value"]
    # Citation annotations carry their positions in the whole message, so they simply add up.
    old_parts[-1]["text"]["annotations"] = old_parts[-1]["text"].get("annotations", []) + new_parts[0]["text"].get(
        "annotations", []
    )
    return True


def _merge_tool_call_delta(into: dict[str, Any], data: dict[str, Any]) -> bool:
    old_calls = into["delta"]["step_details"].get("tool_calls") or []
    new_calls = data["delta"]["step_details"].get("tool_calls") or []
    if len(new_calls) != 1 or "id" in new_calls[0]:
        return False  # a call's first fragment (id, name) is never merged into another call's
    fragment = new_calls[0]
    for call in old_calls:
        if call["index"] != fragment["index"]:
            continue
        if call.get("type") != fragment.get("type"):
            return False
        if fragment.get("type") == "code_interpreter":  # code as it is written; outputs are never merged
            if set(fragment["code_interpreter"]) != {"input"} or call["code_interpreter"].get("outputs"):
                return False
            call["code_interpreter"]["input"] = (
                call["code_interpreter"].get("input", "") + fragment["code_interpreter"]["input"]
            )
            return True
        call["function"]["arguments"] = call["function"].get("arguments", "") + fragment["function"]["arguments"]
        return True
    old_calls.append(copy.deepcopy(fragment))
    return True


def streamed_text(repo: Repository, tenant: str, run_id: str, message_id: str) -> tuple[str, int]:
    """The text that a message's deltas in the run's log add up to (what clients were shown of
    a message whose content is saved only when it closes), and the log's last item number."""
    pk = run_log_pk(tenant, run_id)
    parts: list[str] = []
    after_seq = 0
    while True:
        page = repo.read_events(pk, after_seq)
        for seq, name, data in page.events:
            after_seq = seq
            if name != MESSAGE_DELTA or message_id not in data:
                continue
            delta = json.loads(data)
            if delta.get("id") == message_id:
                parts += [p["text"]["value"] for p in delta["delta"].get("content") or [] if p.get("type") == "text"]
        if not page.has_more or not page.events:
            return "".join(parts), after_seq


# ---------------------------------------------------------------- reading: SSE


def sse_frame(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def stream_events(
    repo: Repository,
    tenant: str,
    run_id: str,
    *,
    after_seq: int,
    thread_id: str,
    search_content: bool = False,
) -> AsyncIterator[str]:
    """Tail a run's event log as SSE frames until the run ends or waits for tool outputs.

    Keep-alive comments go out when nothing happened for a while, because API Gateway
    closes a streamed response that stays idle for five minutes. Each keep-alive also checks
    the run (see :class:`_RunCheck`), so a run that will never log an end event does not hold
    the stream open until the function times out. A failure to read ends the stream with an
    ``error`` event and ``done`` rather than a dropped connection, which SDKs report as a
    network error.
    """
    try:
        check = _RunCheck(repo, tenant, thread_id, run_id)
        async for frame in _tail(repo, tenant, run_id, after_seq, check, search_content):
            yield frame
    except Exception:
        logger.exception("could not stream the run's events", extra={"run_id": run_id})
        yield sse_frame(ERROR, _error_data(ServerError("The server had an error while streaming the run.")))
        yield sse_frame(DONE, "[DONE]")


async def _tail(
    repo: Repository, tenant: str, run_id: str, after_seq: int, check: _RunCheck, search_content: bool
) -> AsyncIterator[str]:
    config = settings()
    pk = run_log_pk(tenant, run_id)
    last_name: str | None = None
    last_event = last_sent = time.monotonic()
    closed_messages: set[str] = set()
    while True:
        page = await asyncio.to_thread(repo.read_events, pk, after_seq)
        for seq, name, data in page.events:
            after_seq, last_name = seq, name
            if name in MESSAGE_ENDS:
                closed_messages.add(json.loads(data)["id"])
            elif name == MESSAGE_DELTA and closed_messages and json.loads(data)["id"] in closed_messages:
                continue  # the agent wrote it before it saw the cancel that closed its message
            elif not search_content and name in STEP_OBJECT_EVENTS and '"file_search"' in data:
                step = json.loads(data)
                data = json.dumps({**step, "step_details": without_search_content(step["step_details"])})
            yield sse_frame(name, data)
            if name in STREAM_END_EVENTS:
                yield sse_frame(DONE, "[DONE]")
                return
        if page.has_more:
            continue
        if page.events:
            last_event = last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= config.stream_keepalive_seconds:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
            ending = await asyncio.to_thread(check.ending, after_seq)
            if ending is not None:
                yield sse_frame(*ending)
                yield sse_frame(DONE, "[DONE]")
                return
        await asyncio.sleep(poll_delay(last_name, time.monotonic() - last_event, config))


def _error_data(error: APIError) -> str:
    """The data of an ``error`` event: the OpenAI ``Error`` object, as JSON."""
    return json.dumps(error.body()["error"], separators=(",", ":"))


class _RunCheck:
    """What an idle stream sends instead of waiting on when the run cannot log an end event.

    The run is gone (its thread was deleted mid-run), or it ended or parked without the event
    (a writer that died between the two). Only idle streams check, once per keep-alive: one
    eventually consistent read of the run's status, more only when that looks final.
    """

    def __init__(self, repo: Repository, tenant: str, thread_id: str, run_id: str) -> None:
        self.repo, self.tenant, self.run_id = repo, tenant, run_id
        self.pk, self.sk = thread_pk(tenant, thread_id), RUN_PREFIX + run_id

    def ending(self, after_seq: int) -> tuple[str, str] | None:
        """The (event, data) to end the stream with after ``after_seq``; None: keep tailing."""
        status = self.repo.get_attribute(self.pk, self.sk, "status")
        if status is not None and status not in STREAM_END_STATUSES:
            return None
        doc = self.repo.get_doc(self.pk, self.sk)  # consistent: the cheap read may lag
        run = Run.model_validate(doc) if doc else None
        if run is not None and run.status not in STREAM_END_STATUSES:
            return None
        if self.repo.read_events(run_log_pk(self.tenant, self.run_id), after_seq, limit=1).events:
            return None  # the end event (or more) arrived meanwhile: stream it
        if run is None:
            gone = f"Run '{self.run_id}' no longer exists: its thread was deleted while it ran."
            return ERROR, _error_data(InvalidRequestError(gone))
        return run_event(run.status), json.dumps(run.model_dump(mode="json"), separators=(",", ":"))


def poll_delay(last_name: str | None, idle: float, config: Settings) -> float:
    """Seconds until a stream next reads the log, which costs a DynamoDB read each time.

    While a message or tool call streams, its deltas are written at most every flush interval,
    so reading as often as before the first token mostly finds nothing; an end event can come
    sooner and waits at most the delta interval. A long silence (a model thinking) stretches the
    interval by a twentieth of the silence so far, up to the maximum: a few percent of the wait.
    """
    base = config.stream_delta_poll_interval_ms if last_name in DELTA_EVENTS else config.stream_poll_interval_ms
    stretched = min(idle * 1000 / 20, config.stream_poll_max_interval_ms)
    return max(base, stretched) / 1000
