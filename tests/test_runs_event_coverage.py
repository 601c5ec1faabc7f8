"""What the other run tests leave out: streamed runs that do not complete, a provider timeout,
the timestamps of the non-terminal statuses, and the non-streaming create-and-run, cancel and
submit_tool_outputs responses.

Every streamed event's data is validated against OpenAI's spec, and every stream must end with
``event: done`` / ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import stack_in_background
from tests.harness.fake_llm import FakeLLM, break_midstream, length, text, tool_calls
from tests.harness.openapi_spec import validate_object, validate_stream_event, wire
from tests.harness.scenario import OPENING, TERMINAL, WEATHER_TOOL, assert_valid_stream, script, sent, wait_for
from tests.harness.sse import SSEStream, parse_sse, post_sse

RUN_TIMESTAMPS = ("started_at", "completed_at", "failed_at", "cancelled_at")


def without_deltas(stream: SSEStream) -> list[str]:
    return [n for n in stream.names if n not in {"thread.message.delta", "thread.run.step.delta"}]


def streamed_text(stream: SSEStream) -> str:
    return "".join(d["delta"]["content"][0]["text"]["value"] for d in stream.data("thread.message.delta"))


def only(stream: SSEStream, name: str) -> dict[str, Any]:
    (data,) = stream.data(name)
    return data


def set_timestamps(run: Any) -> set[str]:
    """Which of a run's status timestamps are set (a run object or a run event's data)."""
    get = run.get if isinstance(run, dict) else lambda key: getattr(run, key)
    return {key for key in RUN_TIMESTAMPS if get(key) is not None}


def thread_accepts_messages(client: OpenAI, thread_id: str) -> None:
    """The run lock is gone: adding a message succeeds."""
    added = client.beta.threads.messages.create(thread_id, role="user", content="Still there?")
    assert added.thread_id == thread_id


# ------------------------------------------------------------------ streamed endings


def test_length_limited_answer_streams_message_incomplete_then_run_incomplete(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    answer = "This answer stops in the middle of"
    script(fake_llm, model, length(answer))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "A long story, please"}])

    stream = post_sse(
        http,
        f"/v1/threads/{thread.id}/runs",
        {"assistant_id": assistant.id, "stream": True, "max_completion_tokens": 300},
    )
    assert_valid_stream(stream)
    assert without_deltas(stream) == [
        *OPENING,
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.incomplete",
        "done",
    ]
    assert streamed_text(stream) == answer
    assert stream.names.index("thread.message.incomplete") > max(
        i for i, n in enumerate(stream.names) if n == "thread.message.delta"
    )
    assert sent(fake_llm, model)[0]["max_tokens"] == 300

    message = only(stream, "thread.message.incomplete")
    assert message["status"] == "incomplete"
    assert message["incomplete_details"] == {"reason": "max_tokens"}
    assert message["incomplete_at"] is not None and message["completed_at"] is None
    assert message["content"][0]["text"]["value"] == answer
    step = only(stream, "thread.run.step.completed")
    assert step["type"] == "message_creation" and step["status"] == "completed"
    assert step["step_details"]["message_creation"]["message_id"] == message["id"]
    run = only(stream, "thread.run.incomplete")
    assert run["status"] == "incomplete"
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}
    assert run["max_completion_tokens"] == 300
    assert run["usage"]["completion_tokens"] == 7
    assert run["completed_at"] is not None and run["expires_at"] is None
    assert run["failed_at"] is None and run["cancelled_at"] is None and run["last_error"] is None

    stored = client.beta.threads.runs.retrieve(run["id"], thread_id=thread.id)
    assert stored.status == "incomplete" and stored.incomplete_details.reason == "max_completion_tokens"
    thread_accepts_messages(client, thread.id)


def test_stream_broken_mid_answer_streams_run_failed(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    """The spec's events for an interrupted answer: thread.message.incomplete ("a message ends
    before it is completed", reason run_failed), thread.run.step.failed for its open step, then
    thread.run.failed; never thread.message.completed. This API sends exactly those, in that order."""
    partial = "The first half of an answer"
    script(fake_llm, model, break_midstream(partial))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])

    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert_valid_stream(stream)
    assert without_deltas(stream) == [
        *OPENING,
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    assert "thread.message.completed" not in stream.names and "thread.run.completed" not in stream.names
    assert streamed_text(stream) == partial

    message = only(stream, "thread.message.incomplete")
    assert message["incomplete_details"] == {"reason": "run_failed"}
    assert message["content"][0]["text"]["value"] == partial
    assert message["incomplete_at"] is not None and message["completed_at"] is None
    step = only(stream, "thread.run.step.failed")
    assert step["type"] == "message_creation" and step["status"] == "failed"
    assert step["step_details"]["message_creation"]["message_id"] == message["id"]
    assert step["failed_at"] is not None and step["last_error"]["code"] == "server_error"
    run = only(stream, "thread.run.failed")
    assert run["status"] == "failed"
    assert run["last_error"]["code"] == "server_error" and run["last_error"]["message"]
    assert set_timestamps(run) == {"started_at", "failed_at"}
    assert run["expires_at"] is None

    thread_accepts_messages(client, thread.id)


def stream_and_cancel(client: OpenAI, http: httpx.Client, thread_id: str, assistant_id: str) -> tuple[SSEStream, Any]:
    """Stream a run and cancel it (another connection) as soon as the first token arrives."""
    raw = ""
    cancelling = None
    with http.stream(
        "POST", f"/v1/threads/{thread_id}/runs", json={"assistant_id": assistant_id, "stream": True}, timeout=30
    ) as response:
        assert response.status_code == 200
        for piece in response.iter_text():
            raw += piece
            if cancelling is None and "event: thread.message.delta\n" in raw:
                run_id = parse_sse(raw[: raw.index("\n\n") + 2]).data("thread.run.created")[0]["id"]
                cancelling = client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    assert cancelling is not None, "the stream ended before the first token"
    return parse_sse(raw), cancelling


def slow_answer_run(client: OpenAI, fake: FakeLLM, model: str) -> tuple[str, Any, Any]:
    """An answer of 40 tokens at 10 a second: four seconds in which to cancel it mid-answer."""
    answer = " ".join(f"word{i}" for i in range(40))
    script(fake, model, text(answer, tps=10))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Talk slowly"}])
    return answer, assistant, thread


def test_cancel_while_streaming_ends_the_stream_cancelled(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    answer, assistant, thread = slow_answer_run(client, fake_llm, model)

    stream, cancelling = stream_and_cancel(client, http, thread.id, assistant.id)
    assert_valid_stream(stream)
    assert cancelling.status == "cancelling"
    validate_object("RunObject", wire(cancelling))
    # The open message is closed, then its step, then the run.
    names = without_deltas(stream)
    assert names == [
        *OPENING,
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    said = streamed_text(stream)
    assert said and len(said) < len(answer) and answer.startswith(said)

    run_id = cancelling.id
    assert {only(stream, name)["id"] for name in ("thread.run.cancelling", "thread.run.cancelled")} == {run_id}
    assert only(stream, "thread.run.cancelling")["status"] == "cancelling"
    message_id = only(stream, "thread.message.created")["id"]
    message = only(stream, "thread.message.incomplete")
    assert message["id"] == message_id and message["status"] == "incomplete"
    assert message["incomplete_details"] == {"reason": "run_cancelled"}
    assert message["incomplete_at"] is not None and message["completed_at"] is None
    assert message["content"][0]["text"]["value"] == said
    step = only(stream, "thread.run.step.cancelled")
    assert step["type"] == "message_creation" and step["status"] == "cancelled"
    assert step["cancelled_at"] is not None and step["completed_at"] is None
    assert step["step_details"]["message_creation"]["message_id"] == message_id
    cancelled = only(stream, "thread.run.cancelled")
    assert cancelled["status"] == "cancelled"
    assert set_timestamps(cancelled) == {"started_at", "cancelled_at"}
    assert cancelled["expires_at"] is None

    assert wait_for(client, thread.id, run_id, TERMINAL).status == "cancelled"
    thread_accepts_messages(client, thread.id)
    # Stored as the stream closed it: the text shown, not what the turn received after the cancel.
    time.sleep(1.5)  # past CANCEL_CHECK_SECONDS: the turn has noticed and stopped
    stored = client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
    assert stored.status == "incomplete" and stored.incomplete_details.reason == "run_cancelled"
    assert stored.completed_at is None and stored.incomplete_at is not None
    assert stored.content[0].text.value == said


def test_a_cancelled_stream_closes_the_message_it_opened(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    """Like a failed run's stream, a cancelled run's stream ends the message it streamed with
    thread.message.incomplete (reason run_cancelled, "a message ends before it is completed")
    before thread.run.cancelled, saying what was streamed, with no delta after it. Three
    attempts, because an earlier version of cancel sent the event only when it won a race."""
    problems = []
    for attempt in range(3):
        _, assistant, thread = slow_answer_run(client, fake_llm, model)
        stream, _ = stream_and_cancel(client, http, thread.id, assistant.id)
        assert_valid_stream(stream)
        names = stream.names
        if names.count("thread.message.incomplete") != 1:
            problems.append(f"attempt {attempt}: no thread.message.incomplete in {without_deltas(stream)}")
            continue
        closed_at = names.index("thread.message.incomplete")
        if closed_at > names.index("thread.run.cancelled"):
            problems.append(f"attempt {attempt}: thread.message.incomplete after thread.run.cancelled")
        if "thread.message.delta" in names[closed_at:]:
            problems.append(f"attempt {attempt}: deltas after thread.message.incomplete")
        message = only(stream, "thread.message.incomplete")
        shown = streamed_text(SSEStream(events=stream.events[:closed_at]))
        if message["content"][0]["text"]["value"] != shown or message["incomplete_details"] != {
            "reason": "run_cancelled"
        }:
            problems.append(f"attempt {attempt}: closed as {message!r} after streaming {shown!r}")
    assert not problems, problems


async def test_async_sdk_stream_sees_the_cancel(async_client: AsyncOpenAI, fake_llm: FakeLLM, model: str) -> None:
    """The SDK's own stream helper, cancelled from another client while it streams."""
    answer = " ".join(f"word{i}" for i in range(40))
    script(fake_llm, model, text(answer, tps=10))
    assistant = await async_client.beta.assistants.create(model=model)
    thread = await async_client.beta.threads.create(messages=[{"role": "user", "content": "Talk slowly"}])
    canceller = AsyncOpenAI(base_url=str(async_client.base_url), api_key=async_client.api_key, max_retries=0)
    cancel_task: asyncio.Task[Any] | None = None
    seen: list[str] = []
    async with async_client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        async for event in stream:
            seen.append(event.event)
            validate_stream_event(event.event, wire(event.data))
            if event.event == "thread.message.delta" and cancel_task is None:
                run = stream.current_run
                assert run is not None
                cancel_task = asyncio.create_task(canceller.beta.threads.runs.cancel(run.id, thread_id=thread.id))
        final = await stream.get_final_run()
        messages = await stream.get_final_messages()
    assert cancel_task is not None
    assert (await cancel_task).status == "cancelling"
    await canceller.close()
    assert final.status == "cancelled" and final.cancelled_at is not None
    ends = [e for e in seen if e not in {"thread.message.delta", "thread.message.incomplete"}][-3:]
    assert ends == ["thread.run.cancelling", "thread.run.step.cancelled", "thread.run.cancelled"]
    assert len(messages) == 1 and messages[0].status in {"in_progress", "incomplete"}


# ------------------------------------------------------------------ a provider timeout


@pytest.fixture(scope="session", autouse=True)
def _timeout_stack(
    request: pytest.FixtureRequest, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[tuple[Any, str]] | None]:
    """A second local stack whose model calls time out after one second (MODEL_TIMEOUT_SECONDS).

    Autouse and session-scoped so that it starts in the background, overlapping the start of
    the shared stack and the other tests; only when a test of the session needs it.
    """
    if not any("timeout_client" in item.fixturenames for item in request.session.items):
        yield None
        return
    with stack_in_background(fake_llm, tmp_path_factory, "timeout-stack", {"MODEL_TIMEOUT_SECONDS": "1"}) as future:
        yield future


@pytest.fixture
def timeout_client(_timeout_stack: Future[tuple[Any, str]] | None, api_key: str) -> OpenAI:
    assert _timeout_stack is not None
    _, url = _timeout_stack.result(timeout=120)
    return OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.mark.parametrize(
    "turn",
    [text("Too late.", delay=4), text("Too late.", ttft=4)],
    ids=["no_response_headers", "no_first_token"],
)
def test_provider_timeout_fails_the_run_and_frees_the_thread(
    timeout_client: OpenAI, fake_llm: FakeLLM, model: str, turn: Any
) -> None:
    client = timeout_client
    script(fake_llm, model, turn, text("Back again."))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    http = httpx.Client(
        base_url=str(client.base_url).removesuffix("/v1/"),
        headers={"Authorization": f"Bearer {client.api_key}", "OpenAI-Beta": "assistants=v2"},
    )
    started = time.monotonic()
    with http:
        stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    elapsed = time.monotonic() - started
    assert_valid_stream(stream)
    assert without_deltas(stream)[-2:] == ["thread.run.failed", "done"]
    assert "thread.message.created" not in stream.names
    assert elapsed < 3.5, f"the run took {elapsed:.1f} s: the 1 s model timeout did not apply"
    failed = only(stream, "thread.run.failed")
    assert failed["last_error"]["code"] == "server_error" and failed["last_error"]["message"]
    assert failed["failed_at"] is not None and failed["expires_at"] is None
    assert len(sent(fake_llm, model)) == 1  # not retried behind the run's back

    run = client.beta.threads.runs.retrieve(failed["id"], thread_id=thread.id)
    assert run.status == "failed" and run.last_error.code == "server_error"
    thread_accepts_messages(client, thread.id)
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert again.status == "completed", again.last_error
    assert client.beta.threads.messages.list(thread.id, run_id=again.id).data[0].content[0].text.value == "Back again."


def test_a_model_that_stalls_mid_answer_fails_the_run_with_what_it_said(
    timeout_client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    """A provider that stops sending half-way (the load test's hanging model) ends the run
    failed after MODEL_TIMEOUT_SECONDS, not when the agent step's Lambda would be killed; the
    message keeps the text that streamed, and the thread is free."""
    client = timeout_client
    script(fake_llm, model, text("Half of it and then silence", tps=0.2))  # 5 s between tokens
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    started = time.monotonic()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        names = [event.event for event in stream]
        run = stream.current_run
    elapsed = time.monotonic() - started
    assert run is not None and run.status == "failed", names
    assert names[-1] == "thread.run.failed" and "thread.message.incomplete" in names
    assert elapsed < 4.5, f"the run took {elapsed:.1f} s: the 1 s model timeout did not apply mid-answer"
    assert run.last_error is not None and run.last_error.code == "server_error"
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.status == "incomplete" and message.content[0].text.value == "Half"
    thread_accepts_messages(client, thread.id)


# ------------------------------------------------------------------ timestamps of the active statuses


def test_queued_in_progress_and_cancelling_runs_carry_their_timestamps(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    """The statuses test_every_status_carries_its_timestamps does not reach: a run expires
    (expires_at) while active, started_at is set from in_progress on, and no ending timestamp
    is set before the run ends."""
    script(fake_llm, model, text(" ".join(f"w{i}" for i in range(40)), tps=10))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Slowly"}])
    before = int(time.time())

    queued = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert queued.status == "queued"
    assert before - 1 <= queued.created_at <= int(time.time())
    assert queued.expires_at is not None and queued.expires_at > time.time()
    assert set_timestamps(queued) == set()
    validate_object("RunObject", wire(queued))

    deadline = time.monotonic() + 15
    while not client.beta.threads.messages.list(thread.id, run_id=queued.id).data:
        assert time.monotonic() < deadline, "the model never started answering"
        time.sleep(0.1)
    in_progress = client.beta.threads.runs.retrieve(queued.id, thread_id=thread.id)
    assert in_progress.status == "in_progress"
    assert in_progress.expires_at == queued.expires_at
    assert set_timestamps(in_progress) == {"started_at"}
    assert queued.created_at <= in_progress.started_at <= int(time.time())
    validate_object("RunObject", wire(in_progress))

    cancelling = client.beta.threads.runs.cancel(queued.id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    assert set_timestamps(cancelling) == {"started_at"}
    assert cancelling.started_at == in_progress.started_at
    validate_object("RunObject", wire(cancelling))

    cancelled = wait_for(client, thread.id, queued.id, TERMINAL)
    assert cancelled.status == "cancelled"
    assert set_timestamps(cancelled) == {"started_at", "cancelled_at"}
    assert cancelled.expires_at is None

    # The same snapshots, as a stream shows them.
    script(fake_llm, model, text("Quick."))
    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert_valid_stream(stream)
    for name in ("thread.run.created", "thread.run.queued"):
        data = only(stream, name)
        assert data["status"] == "queued" and data["expires_at"] > data["created_at"]
        assert set_timestamps(data) == set()
    data = only(stream, "thread.run.in_progress")
    assert data["expires_at"] > data["created_at"] and set_timestamps(data) == {"started_at"}
    data = only(stream, "thread.run.completed")
    assert data["expires_at"] is None and set_timestamps(data) == {"started_at", "completed_at"}


# ------------------------------------------------------------------ non-streaming responses


def test_create_and_run_poll_completes(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    script(fake_llm, model, text("Polled from a new thread."))
    assistant = client.beta.assistants.create(model=model, instructions="Be brief.")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Start"}], "metadata": {"k": "v"}},
        poll_interval_ms=100,
    )
    assert run.status == "completed", run.last_error
    assert run.assistant_id == assistant.id and run.completed_at is not None
    validate_object("RunObject", wire(run))
    thread = client.beta.threads.retrieve(run.thread_id)
    assert thread.metadata == {"k": "v"}
    messages = client.beta.threads.messages.list(run.thread_id, order="asc").data
    assert [(m.role, m.content[0].text.value) for m in messages] == [
        ("user", "Start"),
        ("assistant", "Polled from a new thread."),
    ]
    assert messages[1].run_id == run.id
    (body,) = sent(fake_llm, model)
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Start"}]


def poll_after(raw: Any) -> int:
    value = raw.headers.get("openai-poll-after-ms")
    assert value is not None, "no openai-poll-after-ms header"
    return int(value)


def test_create_and_run_response_has_poll_after_header(client: OpenAI, model: str) -> None:
    assistant = client.beta.assistants.create(model=model)
    raw = client.beta.threads.with_raw_response.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Hi"}]}
    )
    assert raw.status_code == 200
    assert poll_after(raw) > 0
    run = raw.parse()
    assert run.status in {"queued", "in_progress", "completed"}
    assert wait_for(client, run.thread_id, run.id, TERMINAL).status == "completed"


def test_cancel_response_has_poll_after_header(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    script(fake_llm, model, tool_calls([("call_1", "get_weather", {"city": "Paris"})]))
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert wait_for(client, thread.id, created.id, {"requires_action"} | TERMINAL).status == "requires_action"
    raw = client.beta.threads.runs.with_raw_response.cancel(created.id, thread_id=thread.id)
    assert raw.status_code == 200
    assert poll_after(raw) > 0
    assert raw.parse().status == "cancelling"
    assert wait_for(client, thread.id, created.id, TERMINAL).status == "cancelled"


def test_submit_tool_outputs_response_has_poll_after_header(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    script(fake_llm, model, tool_calls([("call_1", "get_weather", {"city": "Paris"})]), text("Sunny."))
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert wait_for(client, thread.id, created.id, {"requires_action"} | TERMINAL).status == "requires_action"
    raw = client.beta.threads.runs.with_raw_response.submit_tool_outputs(
        created.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_1", "output": "sunny"}]
    )
    assert raw.status_code == 200
    assert poll_after(raw) > 0
    assert raw.parse().id == created.id
    assert wait_for(client, thread.id, created.id, TERMINAL).status == "completed"
