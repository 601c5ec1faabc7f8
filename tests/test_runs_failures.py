"""Failures and the edges of the run lifecycle: the thread lock, bad tool outputs, provider
errors, crashes, cancellation, expiry and clients that go away mid-stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import stack_in_background
from tests.harness.fake_llm import (
    FakeLLM,
    Turn,
    break_midstream,
    context_length_exceeded,
    error,
    rate_limited,
    server_error,
    text,
    tool_calls,
)
from tests.harness.openapi_spec import validate_object, validate_stream_event, wire
from tests.harness.scenario import POLL_SECONDS, TERMINAL, assert_clean_last_error, bad_request, fake_name, wait_for
from tests.harness.sse import post_sse

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def park(client: OpenAI, fake: FakeLLM, model: str, calls: list[tuple[str, str, Any]] | None = None) -> tuple[Any, Any]:
    """A thread whose run waits in requires_action for the given tool calls."""
    fake.script(fake_name(model), [tool_calls(calls or [("call_1", "get_weather", {"city": "Paris"})])])
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_for(client, thread.id, created.id, {"requires_action"} | TERMINAL)
    assert run.status == "requires_action", run.last_error
    return thread, run


def assert_thread_usable(client: OpenAI, fake: FakeLLM, model: str, thread_id: str, assistant_id: str) -> None:
    """The thread lock is gone: a message can be added and a new run completes."""
    client.beta.threads.messages.create(thread_id, role="user", content="Still there?")
    fake.script(fake_name(model), [text("Yes, still here.")])
    created = client.beta.threads.runs.create(thread_id, assistant_id=assistant_id)
    run = wait_for(client, thread_id, created.id, TERMINAL)
    assert run.status == "completed", run.last_error
    (message,) = client.beta.threads.messages.list(thread_id, run_id=run.id).data
    assert message.content[0].text.value == "Yes, still here."


# ------------------------------------------------------------------ the thread's run lock


def test_active_run_locks_the_thread_until_cancelled(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    thread, run = park(client, fake_llm, model)

    body = bad_request(lambda: client.beta.threads.messages.create(thread.id, role="user", content="More"))
    assert body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."
    body = bad_request(lambda: client.beta.threads.runs.create(thread.id, assistant_id=run.assistant_id))
    assert body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]
    assert len(client.beta.threads.messages.list(thread.id).data) == 1

    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert wait_for(client, thread.id, run.id, TERMINAL).status == "cancelled"
    assert_thread_usable(client, fake_llm, model, thread.id, run.assistant_id)
    assert len(fake_llm.requests(fake_name(model))) == 2


# ------------------------------------------------------------------ submit_tool_outputs errors


async def test_a_thread_takes_a_message_as_soon_as_its_run_ended(
    async_client: AsyncOpenAI, fake_llm: FakeLLM, model: str
) -> None:
    """The end event and the lock's release are one write: a client that adds a message the
    moment it reads thread.run.completed (or failed) is never told a run is active. Found by
    ``make load``, where 2 runs of 50 met it; here 20 runs at once, each adding its message
    before the stream's done."""
    fake_llm.set_default(text("Done."), model=fake_name(model))
    fake_llm.script(fake_name(model), [server_error()] * 4)  # and some runs end failed
    assistant = await async_client.beta.assistants.create(model=model)

    async def one(number: int) -> str:
        thread = await async_client.beta.threads.create(messages=[{"role": "user", "content": f"Run {number}"}])
        async with async_client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            async for event in stream:
                if event.event in ("thread.run.completed", "thread.run.failed"):
                    await async_client.beta.threads.messages.create(thread.id, role="user", content="Next")
                    return event.event
        raise AssertionError("the stream did not end the run")

    ends = await asyncio.gather(*(one(n) for n in range(20)))
    assert sorted(set(ends)) == ["thread.run.completed", "thread.run.failed"]


def test_bad_tool_outputs_are_400_and_the_run_continues_once(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    thread, run = park(
        client,
        fake_llm,
        model,
        [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_weather", {"city": "Rome"})],
    )
    fake_llm.script(fake_name(model), [text("Paris sunny, Rome rainy.")])
    submit = client.beta.threads.runs.submit_tool_outputs

    # one output missing
    body = bad_request(
        lambda: submit(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_a", "output": "sunny"}])
    )
    assert "call_b" in body["message"]
    # an unknown tool call
    body = bad_request(
        lambda: submit(
            run.id,
            thread_id=thread.id,
            tool_outputs=[
                {"tool_call_id": "call_a", "output": "sunny"},
                {"tool_call_id": "call_zzz", "output": "?"},
            ],
        )
    )
    assert "call_zzz" in body["message"]
    # no outputs at all
    bad_request(lambda: submit(run.id, thread_id=thread.id, tool_outputs=[]))
    # the same call twice
    bad_request(
        lambda: submit(
            run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": "call_a", "output": "x"}, {"tool_call_id": "call_a", "output": "y"}],
        )
    )
    # none of that moved the run
    still = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert still.status == "requires_action"
    assert [c.id for c in still.required_action.submit_tool_outputs.tool_calls] == ["call_a", "call_b"]
    assert len(fake_llm.requests(fake_name(model))) == 1

    outputs = [{"tool_call_id": "call_b", "output": "rainy"}, {"tool_call_id": "call_a", "output": "sunny"}]
    accepted = submit(run.id, thread_id=thread.id, tool_outputs=outputs)
    assert accepted.status in {"queued", "in_progress", "completed"}
    # outputs submitted a second time
    body = bad_request(lambda: submit(run.id, thread_id=thread.id, tool_outputs=outputs))
    assert body["param"] == "run_id" or "status" in body["message"]

    done = wait_for(client, thread.id, run.id, TERMINAL)
    assert done.status == "completed", done.last_error
    # a completed run takes no outputs
    bad_request(lambda: submit(run.id, thread_id=thread.id, tool_outputs=outputs))
    time.sleep(0.5)
    requests = fake_llm.requests(fake_name(model))
    assert len(requests) == 2
    tool_messages = [m for m in requests[1]["messages"] if m["role"] == "tool"]
    assert tool_messages == [
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "rainy"},
    ]
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.content[0].text.value == "Paris sunny, Rome rainy."
    tool_step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data[0]
    assert tool_step.type == "tool_calls" and tool_step.status == "completed"
    assert [c.function.output for c in tool_step.step_details.tool_calls] == ["sunny", "rainy"]


def test_concurrent_double_submit_resumes_the_run_once(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    thread, run = park(client, fake_llm, model, [("call_c", "get_weather", {"city": "Oslo"})])
    fake_llm.script(fake_name(model), [text("Cold in Oslo.")])
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def submit(index: int) -> None:
        barrier.wait()
        try:
            results[index] = client.beta.threads.runs.submit_tool_outputs(
                run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_c", "output": f"cold {index}"}]
            )
        except openai.APIStatusError as error:
            results[index] = error

    workers = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    accepted = [r for r in results if not isinstance(r, openai.APIStatusError)]
    rejected = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert len(accepted) == 1 and len(rejected) == 1, results
    assert rejected[0].status_code == 400
    assert accepted[0].id == run.id

    done = wait_for(client, thread.id, run.id, TERMINAL)
    assert done.status == "completed", done.last_error
    time.sleep(1)
    requests = fake_llm.requests(fake_name(model))
    assert len(requests) == 2  # the model was called exactly once more
    winner = results.index(accepted[0])
    assert requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_c", "content": f"cold {winner}"}
    assert len(client.beta.threads.messages.list(thread.id, run_id=run.id).data) == 1
    assert [s.type for s in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data] == [
        "message_creation",
        "tool_calls",
    ]


# ------------------------------------------------------------------ provider errors


@pytest.mark.parametrize(
    ("turn", "code"),
    [
        (rate_limited(), "rate_limit_exceeded"),
        (server_error(), "server_error"),
        (context_length_exceeded(), "invalid_prompt"),
        (error(400, "Invalid 'tools[0].function.name'.", "invalid_request_error", "invalid_value"), "invalid_prompt"),
        (
            error(401, "Incorrect API key provided: fake-llm-key.", "invalid_request_error", "invalid_api_key"),
            "server_error",
        ),
        (error(404, "The model `x` does not exist.", "invalid_request_error", "model_not_found"), "invalid_prompt"),
    ],
    ids=["429", "500", "context_length", "400", "401", "404"],
)
def test_provider_errors_fail_the_streamed_run(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str, turn: Turn, code: str
) -> None:
    fake_llm.script(fake_name(model), [turn])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert stream.names[-2:] == ["thread.run.failed", "done"], stream.names
    assert stream.events[-1][1] == "[DONE]"
    assert stream.names[0] == "thread.run.created"
    assert "thread.run.completed" not in stream.names
    failed_event = stream.data("thread.run.failed")[0]
    validate_stream_event("thread.run.failed", failed_event)
    assert failed_event["last_error"]["code"] == code
    assert_clean_last_error(failed_event["last_error"]["message"])
    assert failed_event["failed_at"] is not None

    run = client.beta.threads.runs.retrieve(failed_event["id"], thread_id=thread.id)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == code
    assert run.last_error.message == failed_event["last_error"]["message"]
    assert run.failed_at is not None and run.completed_at is None and run.expires_at is None
    validate_object("RunObject", wire(run))
    assert len(fake_llm.requests(fake_name(model))) == 1  # no retry behind the run's back
    assert client.beta.threads.messages.list(thread.id, run_id=run.id).data == []
    assert_thread_usable(client, fake_llm, model, thread.id, assistant.id)


def test_provider_error_fails_a_polled_run(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [rate_limited()])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "failed"
    assert run.last_error.code == "rate_limit_exceeded"
    assert run.last_error.message == "The model provider's rate limit was reached; try the run again later."
    assert run.failed_at is not None


def test_stream_broken_mid_answer_fails_and_keeps_the_partial_message(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    fake_llm.script(fake_name(model), [break_midstream("The first half of an answer")])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_for(client, thread.id, created.id, TERMINAL)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert_clean_last_error(run.last_error.message)
    assert run.failed_at is not None
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.status == "incomplete"
    assert message.incomplete_details is not None and message.incomplete_details.reason == "run_failed"
    assert message.completed_at is None and message.incomplete_at is not None
    assert message.content[0].text.value == "The first half of an answer"  # every token that arrived
    validate_object("MessageObject", wire(message))
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.type == "message_creation" and step.status == "failed"
    assert step.failed_at is not None and step.completed_at is None
    assert step.last_error is not None and step.last_error.code == "server_error"
    validate_object("RunStepObject", wire(step))
    assert_thread_usable(client, fake_llm, model, thread.id, assistant.id)


def test_agent_step_crash_is_caught_by_the_state_machine(
    client: OpenAI, stack_url: str, fake_llm: FakeLLM, model: str
) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    injected = httpx.post(f"{stack_url}/_local/faults", json={"function": "AgentStepFunction", "times": 1}, timeout=10)
    assert injected.status_code == 200, injected.text
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    run = wait_for(client, thread.id, created.id, TERMINAL)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert_clean_last_error(run.last_error.message)
    assert run.failed_at is not None and run.started_at is None
    assert fake_llm.requests(fake_name(model)) == []
    validate_object("RunObject", wire(run))
    assert_thread_usable(client, fake_llm, model, thread.id, assistant.id)


# ------------------------------------------------------------------ cancel


def test_cancel_a_run_waiting_for_tool_outputs(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    thread, run = park(client, fake_llm, model)
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelling.id == run.id and cancelling.status == "cancelling"
    validate_object("RunObject", wire(cancelling))
    cancelled = wait_for(client, thread.id, run.id, TERMINAL, timeout=10)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None and cancelled.required_action is None
    assert cancelled.expires_at is None and cancelled.failed_at is None and cancelled.completed_at is None
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.type == "tool_calls" and step.status == "cancelled" and step.cancelled_at is not None
    # tool outputs for a cancelled run are refused
    bad_request(
        lambda: client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_1", "output": "late"}]
        )
    )
    # cancelling twice is refused too
    bad_request(lambda: client.beta.threads.runs.cancel(run.id, thread_id=thread.id))
    time.sleep(0.5)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled"
    assert len(fake_llm.requests(fake_name(model))) == 1


def test_cancel_a_completed_run_is_400(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "completed"
    body = bad_request(lambda: client.beta.threads.runs.cancel(run.id, thread_id=thread.id))
    assert "completed" in body["message"]
    after = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert after.status == "completed" and after.cancelled_at is None
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.cancel("run_unknown", thread_id=thread.id)


def test_cancel_while_the_model_is_streaming(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    answer = " ".join(f"word{i}" for i in range(40))
    fake_llm.script(fake_name(model), [text(answer, tps=5)])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Talk slowly"}])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 15
    while not client.beta.threads.messages.list(thread.id, run_id=created.id).data:
        assert time.monotonic() < deadline, "the model never started answering"
        time.sleep(POLL_SECONDS)
    assert client.beta.threads.runs.retrieve(created.id, thread_id=thread.id).status == "in_progress"

    cancelling = client.beta.threads.runs.cancel(created.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    run = wait_for(client, thread.id, created.id, TERMINAL, timeout=10)
    assert run.status == "cancelled" and run.cancelled_at is not None

    # the turn notices within a second or two and keeps what was said as an incomplete message
    deadline = time.monotonic() + 5
    while True:
        messages = client.beta.threads.messages.list(thread.id, run_id=run.id).data
        if not messages or messages[0].status != "in_progress" or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    assert len(messages) <= 1
    if messages:
        (message,) = messages
        assert message.status == "incomplete", message.status
        assert message.incomplete_details is not None and message.incomplete_details.reason == "run_cancelled"
        assert message.completed_at is None
        said = message.content[0].text.value if message.content else ""
        assert len(said) < len(answer) and answer.startswith(said)
    time.sleep(1.5)
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled"
    for message in client.beta.threads.messages.list(thread.id, run_id=run.id).data:
        assert message.status != "completed"
    for step in client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data:
        assert step.status == "cancelled"


# ------------------------------------------------------------------ expiry


@pytest.fixture(scope="session", autouse=True)
def _expiring_stack(
    request: pytest.FixtureRequest, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[tuple[Any, str]] | None]:
    """A second local stack whose runs expire two seconds after asking for tool outputs.

    Autouse and session-scoped so that it starts in the background before the shared stack
    (autouse fixtures come first within a scope): the two start-ups overlap.
    """
    if not any("expiring_client" in item.fixturenames for item in request.session.items):
        yield None
        return
    with stack_in_background(
        fake_llm, tmp_path_factory, "expiring-stack", {"LOCAL_TASK_TIMEOUT_SECONDS": "2", "RUN_EXPIRY_SECONDS": "2"}
    ) as future:
        yield future


@pytest.fixture
def expiring_client(_expiring_stack: Future[tuple[Any, str]] | None) -> OpenAI:
    assert _expiring_stack is not None
    _, url = _expiring_stack.result(timeout=120)
    return OpenAI(base_url=f"{url}/v1", api_key="sk-expiry-test", max_retries=0, timeout=60)


def test_run_waiting_for_tool_outputs_expires(expiring_client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    client = expiring_client
    thread, run = park(client, fake_llm, model)
    assert run.expires_at is not None and run.expires_at <= time.time() + 3
    expired = wait_for(client, thread.id, run.id, TERMINAL, timeout=20)
    assert expired.status == "expired"
    assert expired.required_action is None
    assert expired.expires_at is not None and expired.expires_at <= time.time()
    assert expired.failed_at is None and expired.cancelled_at is None and expired.completed_at is None
    validate_object("RunObject", wire(expired))
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.type == "tool_calls" and step.status == "expired" and step.expired_at is not None
    bad_request(
        lambda: client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_1", "output": "too late"}]
        )
    )
    assert_thread_usable(client, fake_llm, model, thread.id, run.assistant_id)


# ------------------------------------------------------------------ a client that goes away


def test_client_disconnect_does_not_stop_the_run(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    answer = " ".join(f"token{i}" for i in range(60))
    fake_llm.script(fake_name(model), [text(answer, tps=20)])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Long answer please"}])
    seen: list[str] = []
    run_id = None
    with http.stream(
        "POST", f"/v1/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True}, timeout=30
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                seen.append(line[len("event: ") :])
            if line.startswith("data: ") and run_id is None and seen and seen[-1] == "thread.run.created":
                run_id = json.loads(line[len("data: ") :])["id"]
            if seen and seen[-1] == "thread.message.delta":
                break
    # the connection is closed here, while the model still has ~2.5 s to go
    assert run_id is not None and "thread.run.completed" not in seen
    assert client.beta.threads.runs.retrieve(run_id, thread_id=thread.id).status == "in_progress"
    run = wait_for(client, thread.id, run_id, TERMINAL, timeout=20)
    assert run.status == "completed", run.last_error
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run_id).data
    assert message.status == "completed"
    assert message.content[0].text.value == answer
    assert len(fake_llm.requests(fake_name(model))) == 1
