"""OpenAI's own Assistants examples, run unchanged against the local stack.

The three programs in ``tests/data/openai_examples`` are verbatim copies of the official SDK's
examples (see its README). Each runs as its own process, configured only by the environment the
SDK reads (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``: a fresh key, so a tenant of its own). They
ask the "Math Tutor" assistant, with ``code_interpreter``, to solve ``3x + 11 = 14``; the fake
model plays the model they name: it writes the code, reads what it printed, then answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from tests.conftest import Stack
from tests.harness.fake_llm import FakeLLM, text
from tests.harness.openapi_spec import validate_stream_event
from tests.test_code_interpreter_runs import code

EXAMPLES = Path(__file__).parent / "data" / "openai_examples"
MODEL = "gpt-4-1106-preview"  # what the examples ask for; litellm sends it to the fake as is
QUESTION = "I need to solve the equation `3x + 11 = 14`. Can you help me?"
SOLUTION = "x = (14 - 11) / 3\nx"
ANSWER = "The solution to the equation 3x + 11 = 14 is x = 1, Jane Doe."
CALL_ID = "call_solve"


@pytest.fixture
def math_tutor(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    """The fake model as the examples' model: code that solves the equation, then the answer."""
    fake_llm.reset(MODEL)
    fake_llm.script(MODEL, [code(CALL_ID, SOLUTION), text(ANSWER)])
    yield fake_llm
    fake_llm.reset(MODEL)


@pytest.fixture
def example_key() -> str:
    return f"sk-example-{uuid.uuid4().hex}"


def run_example(name: str, stack: Stack, api_key: str, cwd: Path) -> str:
    """Run an example unchanged; its stdout (it must exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "PYTHONPATH"}
    env |= {"OPENAI_BASE_URL": f"{stack.url}/v1", "OPENAI_API_KEY": api_key, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def assert_the_model_read_the_result(fake: FakeLLM) -> None:
    """Two requests: the question (with the run's instructions), then the code's output."""
    first, second = fake.requests(MODEL)
    assert first["messages"][0]["role"] == "system"
    assert "Jane Doe" in first["messages"][0]["content"]  # the run's instructions replace the assistant's
    assert first["messages"][-1] == {"role": "user", "content": QUESTION}
    assert any(t["function"]["name"] == "python" for t in first["tools"])
    (called,) = second["messages"][-2]["tool_calls"]
    assert called["id"] == CALL_ID and json.loads(called["function"]["arguments"]) == {"code": SOLUTION}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": CALL_ID, "content": "1.0\n"}
    assert fake.pending(MODEL) == 0


def assistants_left(stack: Stack, api_key: str) -> list[Any]:
    return OpenAI(base_url=f"{stack.url}/v1", api_key=api_key, max_retries=0).beta.assistants.list().data


def printed_events(stdout: str) -> list[dict[str, Any]]:
    """The events assistant_stream.py printed: one indented JSON object after another."""
    head, _, rest = stdout.partition("\n")
    assert head == "starting run stream"
    decoder, events, position = json.JSONDecoder(), [], 0
    while position < len(rest):
        if rest[position].isspace():
            position += 1
            continue
        event, position = decoder.raw_decode(rest, position)
        events.append(event)
    return events


def test_assistant_py_polls_a_run_to_completion_and_lists_the_messages(
    stack: Stack, math_tutor: FakeLLM, example_key: str, tmp_path: Path
) -> None:
    stdout = run_example("assistant.py", stack, example_key, tmp_path)

    assert stdout == (
        "Run completed with status: completed\n"
        "messages: \n"
        f"{ {'role': 'assistant', 'message': ANSWER}!r}\n"
        f"{ {'role': 'user', 'message': QUESTION}!r}\n"
    )
    assert_the_model_read_the_result(math_tutor)
    assert assistants_left(stack, example_key) == []  # the example deleted its assistant


def test_assistant_stream_py_prints_every_event_of_the_run(
    stack: Stack, math_tutor: FakeLLM, example_key: str, tmp_path: Path
) -> None:
    stdout = run_example("assistant_stream.py", stack, example_key, tmp_path)

    events = printed_events(stdout)
    names = [e["event"] for e in events]
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names[-1] == "thread.run.completed"
    assert events[-1]["data"]["status"] == "completed"
    for event in events:  # printed with exclude_unset: what the server sent, as the SDK parsed it
        validate_stream_event(event["event"], event["data"])
    calls = [
        call
        for e in events
        if e["event"] == "thread.run.step.delta" and e["data"]["delta"]["step_details"]["type"] == "tool_calls"
        for call in e["data"]["delta"]["step_details"]["tool_calls"]
    ]
    assert calls and all(c["type"] == "code_interpreter" for c in calls)
    assert calls[0]["id"] == CALL_ID
    assert "".join(c["code_interpreter"].get("input") or "" for c in calls) == SOLUTION
    outputs = [o for c in calls for o in c["code_interpreter"].get("outputs") or []]
    assert outputs == [{"index": 0, "type": "logs", "logs": "1.0\n"}]
    (tool_step,) = [
        e["data"]
        for e in events
        if e["event"] == "thread.run.step.completed" and e["data"]["step_details"]["type"] == "tool_calls"
    ]
    (call,) = tool_step["step_details"]["tool_calls"]
    assert call["code_interpreter"] == {"input": SOLUTION, "outputs": [{"type": "logs", "logs": "1.0\n"}]}
    (message,) = [e["data"] for e in events if e["event"] == "thread.message.completed"]
    assert message["content"][0]["text"]["value"] == ANSWER
    assert names.index("thread.run.step.completed") < names.index("thread.message.created")
    assert_the_model_read_the_result(math_tutor)
    assert assistants_left(stack, example_key) == []


def test_assistant_stream_helpers_py_shows_the_code_then_the_answer(
    stack: Stack, math_tutor: FakeLLM, example_key: str, tmp_path: Path
) -> None:
    stdout = run_example("assistant_stream_helpers.py", stack, example_key, tmp_path)

    # The step's created event opens the code block, its input deltas fill it, its completion
    # (after the code ran) closes it; then the message's created event and its text deltas.
    assert stdout == (
        f"Question: {QUESTION}\n\n"
        "Generating code to interpret:\n\n```py\n"
        f"{SOLUTION}\n```\nExecuting code...\n"
        "\nResponse:\n\n"
        f"{ANSWER}\n"
    )
    assert_the_model_read_the_result(math_tutor)
    assert assistants_left(stack, example_key) == []
