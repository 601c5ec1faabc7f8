"""Streams that must end even when the run cannot end them: an agent step that dies mid-answer,
a thread deleted under a streaming run, a log that cannot be read, a run that ended without
its end event. Every stream ends with ``done``, and every event is valid per OpenAI's spec.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from openai import OpenAI

from assistants_core.config import settings
from assistants_core.repository import EventPage
from assistants_core.services import run_events
from assistants_core.types import Run
from tests.conftest import Stack
from tests.harness.fake_llm import FakeLLM, text
from tests.harness.openapi_spec import validate_object, wire
from tests.harness.scenario import TERMINAL, assert_valid_stream, script, wait_for
from tests.harness.sse import SSEStream, parse_sse, post_sse


def test_agent_crash_mid_answer_fails_the_run_and_leaves_the_message_incomplete(
    stack: Stack, client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    """A model token the agent step cannot log (the emulated DynamoDB refuses any write of it
    as too large) kills the step mid-answer with an error it does not handle itself; the state
    machine's Catch then fails the run."""
    unloggable = f"UNLOGGABLE{time.time_ns()}"
    script(fake_llm, model, text(f"The first words {unloggable}", tps=5))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])

    fault = {"dynamodb_oversize": unloggable, "times": 1000}
    assert httpx.post(f"{stack.aws_endpoint}/_local/faults", json=fault).status_code == 200
    try:
        stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    finally:
        httpx.post(f"{stack.aws_endpoint}/_local/faults", json={**fault, "times": 0})
    assert_valid_stream(stream)
    names = stream.names
    assert "thread.message.delta" in names and "thread.message.completed" not in names
    assert names[-4:] == ["thread.message.incomplete", "thread.run.step.failed", "thread.run.failed", "done"], names
    (incomplete,) = stream.data("thread.message.incomplete")
    assert incomplete["status"] == "incomplete"
    assert incomplete["incomplete_details"] == {"reason": "run_failed"}
    assert incomplete["content"][0]["text"]["value"] == "The first words"  # what the deltas had shown
    failed = stream.data("thread.run.failed")[0]
    assert failed["last_error"]["code"] == "server_error"

    run = wait_for(client, thread.id, failed["id"], TERMINAL)
    assert run.status == "failed" and run.failed_at is not None
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.status == "incomplete"
    assert message.incomplete_details is not None and message.incomplete_details.reason == "run_failed"
    assert message.incomplete_at is not None and message.completed_at is None
    assert wire(message)["content"][0]["text"]["value"] == "The first words"
    validate_object("MessageObject", wire(message))
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.status == "failed"


def test_deleting_the_thread_mid_stream_ends_the_stream_with_an_error(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    answer = " ".join(f"word{i}" for i in range(100))
    script(fake_llm, model, text(answer, tps=10))  # ten seconds of answer
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Talk slowly"}])

    raw = ""
    deleted_at = None
    with http.stream(
        "POST", f"/v1/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True}, timeout=30
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_text():
            raw += chunk
            if deleted_at is None and "event: thread.message.delta" in raw:
                assert client.beta.threads.delete(thread.id).deleted
                deleted_at = time.monotonic()
            # Keep-alives come every second: without an end the stream would never stop.
            assert deleted_at is None or time.monotonic() - deleted_at < 8, "the stream did not end"
    assert deleted_at is not None
    stream = parse_sse(raw)
    assert_valid_stream(stream)
    assert stream.names[-2:] == ["error", "done"], stream.names
    assert "thread.run.completed" not in stream.names
    error = stream.events[-2][1]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert time.monotonic() - deleted_at < 5


# ------------------------------------------------------------------ in process: the stream alone


class StubRepo:
    """The repository reads a stream makes, scripted."""

    def __init__(self, *, fail_reads: bool = False, status: str | None = None, run: Run | None = None) -> None:
        self.fail_reads, self.status, self.run = fail_reads, status, run
        self.first = [(1, "thread.run.created", json.dumps(run.model_dump(mode="json") if run else {}))]

    def read_events(self, pk: str, after_seq: int, limit: int = 100) -> EventPage:
        if self.fail_reads:
            raise RuntimeError("DynamoDB is down")
        return EventPage(self.first if after_seq == 0 else [], has_more=False)

    def get_attribute(self, pk: str, sk: str, name: str) -> Any:
        return self.status

    def get_doc(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.run.model_dump(mode="json") if self.run else None


def collect(repo: StubRepo, monkeypatch: pytest.MonkeyPatch, after_seq: int = 0) -> SSEStream:
    fast = replace(settings(), stream_keepalive_seconds=0.05, stream_poll_interval_ms=10)
    monkeypatch.setattr(run_events, "settings", lambda: fast)

    async def read() -> str:
        frames = run_events.stream_events(repo, "tenant", "run_1", after_seq=after_seq, thread_id="thread_1")  # type: ignore[arg-type]
        return "".join([frame async for frame in frames])

    return parse_sse(asyncio.run(asyncio.wait_for(read(), timeout=5)))


def test_a_log_that_cannot_be_read_ends_the_stream_with_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = collect(StubRepo(fail_reads=True), monkeypatch)
    assert stream.names == ["error", "done"]
    assert_valid_stream(stream)
    assert stream.events[0][1]["type"] == "server_error"


def test_a_run_that_ended_without_its_end_event_ends_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    run = Run.model_validate(
        {
            "id": "run_1",
            "created_at": 1,
            "thread_id": "thread_1",
            "assistant_id": "asst_1",
            "status": "failed",
            "failed_at": 2,
            "last_error": {"code": "server_error", "message": "The finalizer died."},
            "model": "gpt-4o",
            "instructions": "",
            "tools": [],
        }
    )
    stream = collect(StubRepo(status="failed", run=run), monkeypatch, after_seq=1)
    assert stream.names == ["thread.run.failed", "done"]
    assert_valid_stream(stream)
    assert stream.events[0][1]["id"] == "run_1" and stream.events[0][1]["status"] == "failed"
