"""Streamed runs end to end: the SDK's streaming helpers, unchanged, against the local stack.

Every event's data is validated against OpenAI's own spec, and the wire format is checked
raw (``event: ...\\ndata: ...``, ending with ``event: done\\ndata: [DONE]``).
"""

from __future__ import annotations

import json
from typing import Any, override

import httpx
import pytest
from openai import AssistantEventHandler, AsyncOpenAI, OpenAI
from openai.types.beta.threads.runs import RunStep, ToolCall

from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.harness.scenario import OPENING, WEATHER_TOOL, assert_valid_stream, script, sent
from tests.harness.sse import post_sse


def test_text_run_streams_openai_events_in_order(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    answer = "The quick brown fox jumps over the lazy dog."
    script(fake_llm, model, text(answer))
    assistant = client.beta.assistants.create(model=model, instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me something"}])

    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert_valid_stream(stream)
    names = [n for n in stream.names if n != "thread.message.delta"]
    assert names == [
        *OPENING,
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    deltas = stream.data("thread.message.delta")
    assert deltas, "no text deltas were streamed"
    first_index = stream.names.index("thread.message.delta")
    assert stream.names[first_index - 1] == "thread.message.in_progress"
    assert stream.names.index("thread.message.completed") > stream.names.index("thread.message.delta")
    streamed = "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas)
    assert streamed == answer
    assert deltas[0]["delta"]["content"][0]["text"]["value"] == "The", "the first token must be flushed on its own"

    run = stream.data("thread.run.completed")[0]
    assert run["status"] == "completed" and run["usage"]["total_tokens"] > 0
    message = stream.data("thread.message.completed")[0]
    assert message["content"][0]["text"]["value"] == answer
    assert message["run_id"] == run["id"] and message["assistant_id"] == assistant.id
    stored = client.beta.threads.messages.list(thread.id, run_id=run["id"]).data
    assert [m.content[0].text.value for m in stored] == [answer]
    system = sent(fake_llm, model)[0]["messages"][0]
    assert system == {"role": "system", "content": "Be brief."}


def test_sdk_stream_helpers(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    script(fake_llm, model, text("Hello from the stream helper"), text("Second answer"))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])

    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        assert "".join(stream.text_deltas) == "Hello from the stream helper"
        stream.until_done()
        final = stream.get_final_messages()
        run = stream.get_final_run()
    assert [m.content[0].text.value for m in final] == ["Hello from the stream helper"]
    assert run.status == "completed"

    with client.beta.threads.runs.create_and_stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
        assert stream.get_final_messages()[0].content[0].text.value == "Second answer"
    history = sent(fake_llm, model)[1]["messages"]
    assert [m["content"] for m in history] == ["hi", "Hello from the stream helper"]


def test_create_and_run_stream_starts_with_thread_created(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    script(fake_llm, model, text("A new thread"), text("Another"))
    assistant = client.beta.assistants.create(model=model)
    stream = post_sse(
        http,
        "/v1/threads/runs",
        {"assistant_id": assistant.id, "stream": True, "thread": {"messages": [{"role": "user", "content": "start"}]}},
    )
    assert_valid_stream(stream)
    assert stream.names[:3] == ["thread.created", "thread.run.created", "thread.run.queued"]
    thread_id = stream.data("thread.created")[0]["id"]
    assert stream.data("thread.run.created")[0]["thread_id"] == thread_id

    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "again"}]}
    ) as sdk_stream:
        events = [event.event for event in sdk_stream]
        messages = sdk_stream.get_final_messages()
    assert events[0] == "thread.created"
    assert messages[0].content[0].text.value == "Another"


def test_parallel_tool_calls_stream_as_step_deltas(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    script(
        fake_llm,
        model,
        tool_calls([("call_paris", "get_weather", {"city": "Paris"}), ("call_rome", "get_weather", {"city": "Rome"})]),
        text("Paris is 20C and Rome is 25C."),
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris and Rome?"}])

    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert_valid_stream(stream)
    assert stream.names[-2] == "thread.run.requires_action"
    fragments = [
        call for delta in stream.data("thread.run.step.delta") for call in delta["delta"]["step_details"]["tool_calls"]
    ]
    firsts = {}
    for fragment in fragments:
        if fragment["index"] not in firsts:
            firsts[fragment["index"]] = fragment
    assert {f["id"] for f in firsts.values()} == {"call_paris", "call_rome"}
    assert all(f["function"]["name"] == "get_weather" for f in firsts.values())
    arguments: dict[int, str] = {}
    for fragment in fragments:
        arguments[fragment["index"]] = arguments.get(fragment["index"], "") + fragment["function"].get("arguments", "")
    assert sorted(json.loads(a)["city"] for a in arguments.values()) == ["Paris", "Rome"]

    run = stream.data("thread.run.requires_action")[0]
    required = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["id"] for c in required] == ["call_paris", "call_rome"]
    assert run["expires_at"] > run["created_at"]

    outputs = [{"tool_call_id": "call_paris", "output": "20C"}, {"tool_call_id": "call_rome", "output": "25C"}]
    resumed = post_sse(
        http, f"/v1/threads/{thread.id}/runs/{run['id']}/submit_tool_outputs", {"tool_outputs": outputs, "stream": True}
    )
    assert_valid_stream(resumed)
    assert resumed.names[0] == "thread.run.step.completed"
    tool_step = resumed.data("thread.run.step.completed")[0]
    assert [c["function"]["output"] for c in tool_step["step_details"]["tool_calls"]] == ["20C", "25C"]
    assert resumed.names[-2] == "thread.run.completed"
    assert "thread.run.created" not in resumed.names  # the resumed stream continues, it does not replay

    second_request = sent(fake_llm, model)[1]["messages"]
    assistant_turn = second_request[-3]
    assert [c["id"] for c in assistant_turn["tool_calls"]] == ["call_paris", "call_rome"]
    assert second_request[-2:] == [
        {"role": "tool", "tool_call_id": "call_paris", "content": "20C"},
        {"role": "tool", "tool_call_id": "call_rome", "content": "25C"},
    ]
    steps = client.beta.threads.runs.steps.list(run["id"], thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in steps)


class WeatherHandler(AssistantEventHandler):
    """The pattern of the seed application: answer tool calls from inside the stream."""

    def __init__(self, client: OpenAI, thread_id: str) -> None:
        super().__init__()
        self.client = client
        self.thread_id = thread_id
        self.done_calls: list[str] = []
        self.texts: list[str] = []
        self.nested: list[WeatherHandler] = []

    @override
    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.done_calls.append(tool_call.id)
        run = self.current_run
        if run is None or run.status != "requires_action":
            return
        required = run.required_action.submit_tool_outputs.tool_calls
        if tool_call.id != required[-1].id:
            return  # answer once, when the last call of the round is complete
        outputs = [
            {"tool_call_id": call.id, "output": f"sunny in {json.loads(call.function.arguments)['city']}"}
            for call in required
        ]
        handler = WeatherHandler(self.client, self.thread_id)
        self.nested.append(handler)
        with self.client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=self.thread_id, run_id=run.id, tool_outputs=outputs, event_handler=handler
        ) as stream:
            stream.until_done()

    @override
    def on_text_done(self, text: Any) -> None:
        self.texts.append(text.value)


def test_event_handler_submits_tool_outputs_from_on_tool_call_done(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    script(
        fake_llm,
        model,
        tool_calls([("call_a", "get_weather", {"city": "Oslo"})]),
        tool_calls([("call_b", "get_weather", {"city": "Bergen"}), ("call_c", "get_weather", {"city": "Tromso"})]),
        text("Oslo, Bergen and Tromso are sunny."),
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather up north?"}])

    handler = WeatherHandler(client, thread.id)
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()

    assert handler.done_calls == ["call_a"]
    first_nested = handler.nested[0]
    assert first_nested.done_calls == ["call_b", "call_c"]
    assert first_nested.nested[0].texts == ["Oslo, Bergen and Tromso are sunny."]
    runs = client.beta.threads.runs.list(thread.id).data
    assert len(runs) == 1 and runs[0].status == "completed"
    assert len(client.beta.threads.runs.steps.list(runs[0].id, thread_id=thread.id).data) == 3
    final_request = sent(fake_llm, model)[2]["messages"]
    tool_messages = [m for m in final_request if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_a", "call_b", "call_c"]
    assert tool_messages[2]["content"] == "sunny in Tromso"


def test_deltas_are_batched_after_the_first(client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str) -> None:
    words = " ".join(f"w{i}" for i in range(120))
    script(fake_llm, model, text(words, tps=300))  # ~0.4 s of tokens
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count"}])
    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    deltas = stream.data("thread.message.delta")
    assert deltas[0]["delta"]["content"][0]["text"]["value"] == "w0"
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == words
    # 120 tokens over ~0.4 s at most every ~100 ms: a handful of writes, not one per token.
    assert 2 <= len(deltas) <= 20, len(deltas)


def test_keep_alive_comments_while_the_model_thinks(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    script(fake_llm, model, text("Finally.", delay=2.5))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "take your time"}])
    stream = post_sse(http, f"/v1/threads/{thread.id}/runs", {"assistant_id": assistant.id, "stream": True})
    assert "keep-alive" in stream.comments  # the session stack sends them after 1 s idle
    assert_valid_stream(stream)
    assert stream.names[-2] == "thread.run.completed"


def test_non_streaming_create_then_poll(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    script(fake_llm, model, text("Polled answer"))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    raw = client.beta.threads.runs.with_raw_response.create(thread_id=thread.id, assistant_id=assistant.id)
    assert int(raw.headers["openai-poll-after-ms"]) > 0
    run = raw.parse()
    assert run.status == "queued" and run.id.startswith("run_")
    done = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert done.status == "completed" and done.started_at and done.completed_at
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "Polled answer"


async def test_async_streaming_with_tools(async_client: AsyncOpenAI, fake_llm: FakeLLM, model: str) -> None:
    script(fake_llm, model, tool_calls([("call_x", "get_weather", {"city": "Lima"})]), text("Lima: 18C"))
    assistant = await async_client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = await async_client.beta.threads.create(messages=[{"role": "user", "content": "Lima?"}])
    async with async_client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        await stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "requires_action"
    async with async_client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": "call_x", "output": "18C"}]
    ) as stream:
        pieces = [delta async for delta in stream.text_deltas]
        final = await stream.get_final_run()
    assert "".join(pieces) == "Lima: 18C"
    assert final.status == "completed"
    steps = [s async for s in async_client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc")]
    assert isinstance(steps[0], RunStep) and steps[0].step_details.tool_calls[0].function.output == "18C"


@pytest.mark.parametrize("path", ["/v1/threads/{thread}/runs", "/v1/threads/runs"])
def test_bad_run_requests_are_400_not_5xx(client: OpenAI, http: httpx.Client, path: str) -> None:
    thread = client.beta.threads.create()
    url = path.format(thread=thread.id)
    assert http.post(url, json={}).status_code == 400  # no assistant_id
    response = http.post(url, json={"assistant_id": "asst_missing", "stream": True})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "assistant_id"
    assistant = client.beta.assistants.create(model="openai/x")
    for bad in (
        {"temperature": 9},
        {"max_completion_tokens": 10},
        {"truncation_strategy": {"type": "middle"}},
        {"colour": 1},
    ):
        response = http.post(url, json={"assistant_id": assistant.id, **bad})
        assert response.status_code == 400, (bad, response.text)
    assert client.beta.threads.runs.list(thread.id).data == []
