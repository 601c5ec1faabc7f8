"""Small helpers the run tests share: scripting the fake model per test, waiting for a run,
checking a stream and a 400."""

from __future__ import annotations

import re
import time
from typing import Any

import openai
import pytest
from openai import OpenAI

from .fake_llm import FakeLLM
from .openapi_spec import validate_stream_event
from .sse import SSEStream

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# The events a streamed run sends before its answer's first token.
OPENING = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]

POLL_SECONDS = 0.1
TERMINAL = {"completed", "failed", "cancelled", "incomplete", "expired"}


def fake_name(model: str) -> str:
    """The name the fake LLM sees: litellm strips the provider prefix (``openai/``)."""
    return model.split("/", 1)[1]


def script(fake: FakeLLM, model: str, *turns: Any) -> None:
    fake.script(fake_name(model), list(turns))


def sent(fake: FakeLLM, model: str) -> list[dict[str, Any]]:
    """The request bodies the fake model received for this test's model."""
    return fake.requests(fake_name(model))


def wait_for(client: OpenAI, thread_id: str, run_id: str, statuses: set[str], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status!r} after {timeout}s (waiting for {statuses})")
        time.sleep(POLL_SECONDS)


def assert_valid_stream(stream: SSEStream) -> None:
    """Every event's data is valid per OpenAI's spec, and the stream ends once, with done."""
    for name, data in stream.events:
        validate_stream_event(name, data)
    assert stream.events[-1] == ("done", "[DONE]"), stream.names[-3:]
    assert stream.raw.endswith("event: done\ndata: [DONE]\n\n")
    assert stream.names.count("done") == 1


def bad_request(call: Any) -> dict[str, Any]:
    """The body of the 400 a call must fail with (the SDK has no retries here: a 5xx raises)."""
    with pytest.raises(openai.BadRequestError) as raised:
        call()
    assert raised.value.status_code == 400
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error", body
    return body


def assert_clean_last_error(message: str) -> None:
    """A run's ``last_error.message`` is one sentence for a user: no newline, no library or class
    name, no traceback, no URL (litellm's own message goes to the logs only)."""
    assert re.fullmatch(r"[A-Z][^\n]*[.]", message), message
    assert "litellm" not in message.lower() and "traceback" not in message.lower(), message
    assert not re.search(r"Exception|\b\w+Error\b|Error:|https?://", message), message
