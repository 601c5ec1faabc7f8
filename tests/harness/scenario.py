"""Small helpers the run tests share: scripting the fake model per test, waiting for a run."""

from __future__ import annotations

import time
from typing import Any

from openai import OpenAI

from .fake_llm import FakeLLM

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
