"""The fake LLM server, and proof that litellm talks to it the way the agent step will rely on.

Everything goes through litellm itself (model "openai/<scenario>", api_base=fake.base_url), so
these tests also pin litellm's chunk shapes and exception classes: if an upgrade changes them,
this file fails before the agent step does.

Observed with litellm 1.106.0 (openai 2.x underneath):

* text delta         chunk.choices[0].delta.content   ("" with role "assistant" on the first chunk,
                                                       None on the finish and usage chunks)
* tool-call fragment chunk.choices[0].delta.tool_calls[i] -> .index, .id, .type, .function.name,
                     .function.arguments; .id/.function.name only on a call's first fragment
                     (None after), .type is filled in with "function" on every fragment
* finish reason      chunk.choices[0].finish_reason    on its own chunk with an empty delta
* usage              getattr(chunk, "usage", None)      on the last chunk only, and only with
                     stream_options={"include_usage": True}; litellm gives that chunk a dummy
                     choice (empty delta, finish_reason None) even though the wire has choices: []
* errors             429 -> litellm.RateLimitError; 500 -> litellm.InternalServerError;
                     400 whose message says "maximum context length" -> ContextWindowExceededError
                     (a BadRequestError subclass; matched on the message, not the code);
                     other 400 -> BadRequestError; 503 -> ServiceUnavailableError; all raised by
                     the completion() call itself, even with stream=True;
                     connection dropped mid-stream -> MidStreamFallbackError while
                     iterating (ServiceUnavailableError subclass, .generated_content holds the
                     text so far); dropped non-streamed response -> litellm.InternalServerError;
                     no first byte within timeout= -> litellm.Timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import openai  # noqa: E402
from litellm.exceptions import MidStreamFallbackError  # noqa: E402  (not re-exported as litellm.X)

from tests.harness.fake_llm import (  # noqa: E402
    FakeLLM,
    break_midstream,
    context_length_exceeded,
    delay,
    error,
    length,
    rate_limited,
    server_error,
    text,
    tool_calls,
)

litellm.suppress_debug_info = True

ROOT = Path(__file__).resolve().parents[1]
USER = [{"role": "user", "content": "Hello?"}]


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as server:
        yield server


def kwargs(fake: FakeLLM) -> dict[str, Any]:
    return {"api_base": fake.base_url, "api_key": "test", "num_retries": 0, "max_retries": 0}


def accumulate(chunks: list[Any]) -> dict[str, Any]:
    """How the agent step folds litellm stream chunks into one assistant message."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish_reason = None
    usage = None
    for chunk in chunks:
        if getattr(chunk, "usage", None) is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            content.append(delta.content)
        for fragment in delta.tool_calls or []:
            call = calls.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
            if fragment.id:
                call["id"] = fragment.id
            if fragment.function is not None:
                if fragment.function.name:
                    call["name"] += fragment.function.name
                if fragment.function.arguments:
                    call["arguments"] += fragment.function.arguments
        if choice.finish_reason:
            finish_reason = choice.finish_reason
    return {
        "content": "".join(content),
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish_reason,
        "usage": usage,
    }


# ---------------------------------------------------------------------------------------------
# text, usage, length
# ---------------------------------------------------------------------------------------------


def test_streamed_text_arrives_as_several_deltas_with_usage(fake: FakeLLM) -> None:
    answer = "The quick brown fox jumps over the lazy dog."
    fake.script("stream-text", text(answer, prompt_tokens=11))
    chunks = list(
        litellm.completion(
            model="openai/stream-text",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs(fake),
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) == 9  # one word per chunk
    assert "".join(deltas) == answer
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == ""

    folded = accumulate(chunks)
    assert folded["content"] == answer
    assert folded["finish_reason"] == "stop"
    assert folded["tool_calls"] == []
    usage = folded["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 9, 20)
    # usage rides on the very last chunk only; litellm hands it a dummy choice
    assert getattr(chunks[-1], "usage", None) is usage
    assert all(getattr(c, "usage", None) is None for c in chunks[:-1])
    assert chunks[-1].choices[0].delta.content is None and chunks[-1].choices[0].finish_reason is None
    assert fake.requests("stream-text")[0]["stream_options"] == {"include_usage": True}


def test_streamed_text_without_include_usage_has_no_usage(fake: FakeLLM) -> None:
    fake.script("stream-no-usage", text("one two three"))
    chunks = list(litellm.completion(model="openai/stream-no-usage", messages=USER, stream=True, **kwargs(fake)))
    folded = accumulate(chunks)
    assert folded["content"] == "one two three"
    assert folded["finish_reason"] == "stop"
    assert folded["usage"] is None
    assert "stream_options" not in fake.requests("stream-no-usage")[0]


def test_chunk_size_splits_by_characters(fake: FakeLLM) -> None:
    fake.script("chunked", text("abcdefghij", chunk_size=3))
    chunks = list(litellm.completion(model="openai/chunked", messages=USER, stream=True, **kwargs(fake)))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ["abc", "def", "ghi", "j"]


def test_non_streamed_text_and_default_turn(fake: FakeLLM) -> None:
    fake.script("plain", text("Hi there.", prompt_tokens=5))
    response = litellm.completion(model="openai/plain", messages=USER, **kwargs(fake))
    assert response.choices[0].message.content == "Hi there."
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 2)
    # queue empty: the server-wide default turn answers
    again = litellm.completion(model="openai/plain", messages=USER, **kwargs(fake))
    assert again.choices[0].message.content == "ok"
    # a per-model default
    fake.set_default(text("always this"), model="plain")
    assert litellm.completion(model="openai/plain", messages=USER, **kwargs(fake)).choices[0].message.content == (
        "always this"
    )
    assert len(fake.requests("plain")) == 3
    assert fake.pending("plain") == 0


def test_finish_reason_length_is_visible(fake: FakeLLM) -> None:
    fake.script("truncated", [length("This answer was cut"), length("Cut again")])
    chunks = list(litellm.completion(model="openai/truncated", messages=USER, stream=True, **kwargs(fake)))
    folded = accumulate(chunks)
    assert folded["content"] == "This answer was cut"
    assert folded["finish_reason"] == "length"

    response = litellm.completion(model="openai/truncated", messages=USER, **kwargs(fake))
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == "Cut again"


# ---------------------------------------------------------------------------------------------
# tool calls
# ---------------------------------------------------------------------------------------------

PARALLEL: list[tuple[str, str, Any]] = [
    ("call_weather_1", "get_weather", '{"city": "Paris", "unit": "celsius"}'),
    ("call_time_2", "get_time", {"timezone": "Europe/Paris"}),
    ("call_noargs_3", "list_files", "{}"),
]


def test_streamed_parallel_tool_calls_reassemble(fake: FakeLLM) -> None:
    fake.script("tools-stream", tool_calls(PARALLEL, content="Let me check.", args_chunk_size=5))
    chunks = list(
        litellm.completion(
            model="openai/tools-stream",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
            **kwargs(fake),
        )
    )
    folded = accumulate(chunks)
    assert folded["content"] == "Let me check."
    assert folded["finish_reason"] == "tool_calls"
    assert folded["tool_calls"] == [
        {"id": "call_weather_1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
        {"id": "call_time_2", "name": "get_time", "arguments": '{"timezone": "Europe/Paris"}'},
        {"id": "call_noargs_3", "name": "list_files", "arguments": "{}"},
    ]
    assert json.loads(folded["tool_calls"][1]["arguments"]) == {"timezone": "Europe/Paris"}

    # The fragments really were split: id/name only on a call's first fragment.
    fragments = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first_of_call_0 = fragments[0]
    assert (first_of_call_0.index, first_of_call_0.id, first_of_call_0.function.name) == (
        0,
        "call_weather_1",
        "get_weather",
    )
    assert first_of_call_0.function.arguments == ""
    later = [f for f in fragments if f.index == 0][1:]
    assert len(later) == 8  # 36 chars of arguments in 5-char pieces
    assert all(f.id is None and f.function.name is None for f in later)
    assert all(f.type == "function" for f in fragments)  # litellm fills type in on every fragment

    # litellm can also rebuild the whole message from the chunks.
    rebuilt: Any = litellm.stream_chunk_builder(chunks, messages=USER)
    message = rebuilt.choices[0].message
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        (t["id"], t["name"], t["arguments"]) for t in folded["tool_calls"]
    ]
    assert rebuilt.choices[0].finish_reason == "tool_calls"
    assert rebuilt.usage.completion_tokens == folded["usage"].completion_tokens


def test_non_streamed_parallel_tool_calls(fake: FakeLLM) -> None:
    fake.script("tools-plain", tool_calls(PARALLEL))
    response = litellm.completion(model="openai/tools-plain", messages=USER, **kwargs(fake))
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("call_weather_1", "function", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ("call_time_2", "function", "get_time", {"timezone": "Europe/Paris"}),
        ("call_noargs_3", "function", "list_files", {}),
    ]


def test_wire_format_matches_openai_streaming(fake: FakeLLM) -> None:
    """Below litellm: the raw SSE the server writes has OpenAI's exact tool-call fragment shape."""
    fake.script("raw", tool_calls([("call_a", "f", '{"x": 1}'), ("call_b", "g", '{"y": 2}')], args_chunk_size=4))
    body = {"model": "raw", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    fragments = [
        e["choices"][0]["delta"]["tool_calls"][0]
        for e in events
        if e["choices"] and "tool_calls" in e["choices"][0]["delta"]
    ]
    assert fragments[0] == {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert fragments[1] == {"index": 0, "function": {"arguments": '{"x"'}}
    assert fragments[3] == {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": ""}}
    assert events[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["completion_tokens"] == 4  # argument fragments count as tokens

    models = httpx.get(f"{fake.base_url}/models", timeout=10).json()
    assert {"fake", "raw"} <= {m["id"] for m in models["data"]}


# ---------------------------------------------------------------------------------------------
# request recording: what reaches the wire
# ---------------------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
]


def test_request_parameters_reach_the_wire(fake: FakeLLM) -> None:
    litellm.completion(
        model="openai/params-a",
        messages=CONVERSATION,
        tools=TOOLS,
        temperature=0.25,
        top_p=0.5,
        tool_choice="required",
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        max_tokens=77,
        **kwargs(fake),
    )
    (body,) = fake.requests("params-a")
    assert body["model"] == "params-a"  # "openai/" is stripped
    assert body["temperature"] == 0.25
    assert body["top_p"] == 0.5
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 77 and "max_completion_tokens" not in body
    assert body["tools"] == TOOLS
    assert "stream" not in body
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": "You are terse."}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}
    # litellm drops the None content of the assistant tool-call message
    assert messages[2] == {"role": "assistant", "tool_calls": CONVERSATION[2]["tool_calls"]}
    assert fake.recorded("params-a")[0].headers["authorization"] == "Bearer test"


def test_max_completion_tokens_and_json_schema_and_named_tool_choice(fake: FakeLLM) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "strict": True,
        },
    }
    named = {"type": "function", "function": {"name": "get_weather"}}
    list(
        litellm.completion(
            model="openai/params-b",
            messages=CONVERSATION,
            tools=TOOLS,
            tool_choice=named,
            response_format=schema,
            max_completion_tokens=55,
            stream=True,
            **kwargs(fake),
        )
    )
    (body,) = fake.requests("params-b")
    assert body["max_completion_tokens"] == 55 and "max_tokens" not in body
    assert body["response_format"] == schema
    assert body["tool_choice"] == named
    assert body["stream"] is True
    # parameters that were not given are not sent
    for absent in ("temperature", "top_p", "parallel_tool_calls"):
        assert absent not in body


# ---------------------------------------------------------------------------------------------
# failures -> litellm exception classes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("turn", "expected", "not_expected"),
    [
        (rate_limited(), litellm.RateLimitError, None),
        (server_error(), litellm.InternalServerError, None),
        (error(503, "Service overloaded", "server_error"), litellm.ServiceUnavailableError, None),
        (context_length_exceeded(), litellm.ContextWindowExceededError, None),
        # litellm recognises context overflow by the message, not by the code
        (
            error(400, "Prompt is too long", "invalid_request_error", "context_length_exceeded"),
            litellm.BadRequestError,
            litellm.ContextWindowExceededError,
        ),
        (
            error(400, "Invalid prompt: bad content", "invalid_request_error", "invalid_prompt"),
            litellm.BadRequestError,
            litellm.ContextWindowExceededError,
        ),
        (
            error(401, "Incorrect API key provided: te**", "invalid_request_error", "invalid_api_key"),
            litellm.AuthenticationError,
            None,
        ),
    ],
    ids=["429", "500", "503", "400-context", "400-code-only", "400-invalid-prompt", "401"],
)
def test_http_errors_map_to_litellm_exceptions(
    fake: FakeLLM, turn: Any, expected: type, not_expected: type | None, stream: bool
) -> None:
    model = f"err-{turn.status}-{turn.error_code}-{stream}-{id(turn)}"
    fake.script(model, turn)
    # raised by the completion() call itself: the status arrives before any chunk
    with pytest.raises(expected) as caught:
        litellm.completion(model=f"openai/{model}", messages=USER, stream=stream, **kwargs(fake))
    assert type(caught.value) is expected
    if not_expected is not None:
        assert not isinstance(caught.value, not_expected)
    assert getattr(caught.value, "status_code", None) == turn.status
    assert turn.error_message in str(caught.value)
    assert len(fake.requests(model)) == 1  # no retries


def test_exception_hierarchy() -> None:
    """What an `except` clause in the agent step can rely on."""
    assert issubclass(litellm.ContextWindowExceededError, litellm.BadRequestError)
    assert issubclass(MidStreamFallbackError, litellm.ServiceUnavailableError)
    assert not issubclass(MidStreamFallbackError, litellm.APIConnectionError)
    assert issubclass(litellm.Timeout, litellm.APIConnectionError) is False
    assert issubclass(litellm.Timeout, openai.APITimeoutError)
    # litellm's classes subclass the openai SDK's; their common base is openai.APIError,
    # NOT litellm.APIError (a sibling class).
    for cls in (
        litellm.RateLimitError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.BadRequestError,
        litellm.ContextWindowExceededError,
        litellm.AuthenticationError,
        litellm.Timeout,
        litellm.APIConnectionError,
        MidStreamFallbackError,
    ):
        assert issubclass(cls, openai.APIError)
        assert not issubclass(cls, litellm.APIError)


def test_midstream_break_raises_while_iterating(fake: FakeLLM) -> None:
    fake.script("broken", break_midstream("Half of an answer"))
    stream = litellm.completion(model="openai/broken", messages=USER, stream=True, **kwargs(fake))
    received: list[str] = []
    with pytest.raises(MidStreamFallbackError) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "Half of an answer"
    assert caught.value.generated_content == "Half of an answer"
    assert isinstance(caught.value.original_exception, litellm.APIConnectionError)
    assert "incomplete chunked read" in str(caught.value)


def test_midstream_break_non_streamed(fake: FakeLLM) -> None:
    fake.script("broken-plain", break_midstream("Half of an answer"))
    with pytest.raises(litellm.InternalServerError) as caught:
        litellm.completion(model="openai/broken-plain", messages=USER, **kwargs(fake))
    assert "Connection error" in str(caught.value)


async def test_midstream_break_async(fake: FakeLLM) -> None:
    fake.script("broken-async", break_midstream("Half of an answer"))
    stream = await litellm.acompletion(model="openai/broken-async", messages=USER, stream=True, **kwargs(fake))
    with pytest.raises(MidStreamFallbackError) as caught:
        async for _ in stream:
            pass
    assert caught.value.generated_content == "Half of an answer"


def test_no_first_byte_within_timeout(fake: FakeLLM) -> None:
    fake.script("stalled", text("too late", delay=2.0))
    started = time.perf_counter()
    with pytest.raises(litellm.Timeout):
        litellm.completion(model="openai/stalled", messages=USER, stream=True, timeout=0.3, **kwargs(fake))
    assert time.perf_counter() - started < 1.95  # litellm gave up before the answer's 2 s delay


def test_timeout_bounds_each_gap_between_chunks_not_the_total(fake: FakeLLM) -> None:
    # 10 tokens at 20 tok/s take ~0.45 s in total, but no gap reaches the 0.3 s timeout.
    fake.script("steady", text("a b c d e f g h i j", ttft=0.1, tps=20))
    chunks = list(litellm.completion(model="openai/steady", messages=USER, stream=True, timeout=0.3, **kwargs(fake)))
    assert accumulate(chunks)["content"] == "a b c d e f g h i j"
    # a 0.5 s gap between two tokens does trip it, mid-stream
    fake.script("gappy", text("a b c", tps=2))
    with pytest.raises(MidStreamFallbackError):
        list(litellm.completion(model="openai/gappy", messages=USER, stream=True, timeout=0.3, **kwargs(fake)))


# ---------------------------------------------------------------------------------------------
# timing and concurrency
# ---------------------------------------------------------------------------------------------

ANSWER_20 = " ".join(f"w{i}" for i in range(20))  # 20 tokens: 0.2 s + 19 / 50 s = 0.58 s


async def _timed_stream(base_url: str, model: str) -> tuple[float, float, str]:
    started = time.perf_counter()
    first = None
    parts: list[str] = []
    stream = await litellm.acompletion(
        model=f"openai/{model}", messages=USER, stream=True, api_base=base_url, api_key="test", max_retries=0
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter() - started
            parts.append(chunk.choices[0].delta.content)
    return first or 0.0, time.perf_counter() - started, "".join(parts)


def assert_served_concurrently(server: FakeLLM, count: int, min_response_seconds: float) -> None:
    """The last ``count`` requests overlapped: each arrived before the one before it could have
    been answered (a response takes at least ``min_response_seconds`` on the server). Served one
    at a time, consecutive arrivals would be at least that far apart, however loaded the machine.
    """
    arrivals = sorted(r.received_at for r in server.recorded()[-count:])
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert len(arrivals) == count
    assert max(gaps) < min_response_seconds, gaps


async def test_server_alone_serves_twenty_streams_in_parallel() -> None:
    """Without litellm's per-chunk CPU cost in the way: the server itself never serialises."""
    body = {"model": "raw-bench", "messages": USER, "stream": True}

    async def one(client: httpx.AsyncClient) -> float:
        started = time.perf_counter()
        async with client.stream("POST", "/chat/completions", json=body) as response:
            lines = [line async for line in response.aiter_lines() if line]
        assert lines[-1] == "data: [DONE]" and len(lines) == 23  # role chunk, 20 tokens, finish chunk, [DONE]
        return time.perf_counter() - started

    with FakeLLM(ttft=0.2, tps=50, default_turn=text(ANSWER_20)) as server:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10, limits=limits) as client:
            single = await one(client)
            assert single >= 0.55  # 0.2 s to the first token, then 20 tokens at 50/s
            await asyncio.gather(*(one(client) for _ in range(20)))
        assert_served_concurrently(server, 20, min_response_seconds=0.55)


async def test_twenty_concurrent_streams_take_max_not_sum_time() -> None:
    # Server-wide default timing and answer: the benchmark does not script each request.
    with FakeLLM(ttft=0.2, tps=50, default_turn=text(ANSWER_20)) as server:
        await _timed_stream(server.base_url, "warmup")
        ttft, single, content = await _timed_stream(server.base_url, "bench")
        assert content == ANSWER_20
        assert ttft >= 0.18 and single >= 0.55  # the server keeps its timing

        results = await asyncio.gather(*(_timed_stream(server.base_url, f"bench-{i}") for i in range(20)))
        assert all(r[2] == ANSWER_20 for r in results)
        assert len(server.requests()) == 22
        assert_served_concurrently(server, 20, min_response_seconds=0.55)


def test_twenty_concurrent_sync_streams_from_threads() -> None:
    with FakeLLM(ttft=0.2, tps=50, default_turn=text(ANSWER_20)) as server:
        list(
            litellm.completion(
                model="openai/one", messages=USER, stream=True, api_base=server.base_url, api_key="t", max_retries=0
            )
        )
        outputs: list[str] = []
        lock = threading.Lock()

        def run(i: int) -> None:
            stream = litellm.completion(
                model=f"openai/thread-{i}",
                messages=USER,
                stream=True,
                api_base=server.base_url,
                api_key="t",
                max_retries=0,
            )
            content = accumulate(list(stream))["content"]
            with lock:
                outputs.append(content)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert outputs == [ANSWER_20] * 20
        assert_served_concurrently(server, 20, min_response_seconds=0.55)


def test_per_turn_timing_overrides_server_default(fake: FakeLLM) -> None:
    fake.script("timed", text("x y z", delay=0.2, ttft=0.1, tps=10))
    started = time.perf_counter()
    first = None
    for chunk in litellm.completion(model="openai/timed", messages=USER, stream=True, **kwargs(fake)):
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    assert first is not None and first >= 0.28  # delay + ttft
    assert total >= first + 0.18  # + 2 gaps of 0.1 s


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_serves_default_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/core/python'}{os.pathsep}{ROOT}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.fake_llm", "--port", str(port), "--text", "hello from cli"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base_url}/models", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        response = litellm.completion(
            model="openai/anything", messages=USER, api_base=base_url, api_key="t", max_retries=0
        )
        assert response.choices[0].message.content == "hello from cli"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_delay_builder_holds_back_the_first_byte(fake: FakeLLM) -> None:
    fake.script("delayed", delay(0.3, text("late")))
    started = time.perf_counter()
    response = litellm.completion(model="openai/delayed", messages=USER, **kwargs(fake))
    assert response.choices[0].message.content == "late"
    assert time.perf_counter() - started >= 0.28


# ---------------------------------------------------------------------------------------------
# faults (the load test's provider that fails and hangs) and tool-round models
# ---------------------------------------------------------------------------------------------


def test_fail_rate_one_answers_every_request_with_500_and_keeps_the_script() -> None:
    with FakeLLM(fail_rate=1.0, seed=1) as failing:
        failing.script("kept", text("never served"))
        for _ in range(3):
            with pytest.raises(litellm.InternalServerError):
                litellm.completion(model="openai/kept", messages=USER, stream=True, **kwargs(failing))
        assert failing.pending("kept") == 1  # a 500 does not consume the scripted turn
        assert failing.stats() == {"chat_requests": 3, "faults": {"500": 3}}
        assert httpx.get(f"http://{failing.host}:{failing.port}/_fake/stats").json() == failing.stats()


def _read_until_stalled(base_url: str, body: dict[str, Any]) -> tuple[bool, str]:
    """(headers arrived, content streamed) before a 0.5 s read timeout."""
    parts: list[str] = []
    try:
        with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=0.5) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    parts += [c["delta"].get("content") or "" for c in choices]
    except httpx.ReadTimeout:
        return "response" in locals(), "".join(parts)
    raise AssertionError(f"the request did not hang: {''.join(parts)!r}")


def test_hang_rate_one_stalls_before_the_headers_or_half_way() -> None:
    answer = "one two three four five six seven eight"
    with FakeLLM(hang_rate=1.0, seed=7, default_turn=text(answer)) as hanging:
        body = {"model": "hangs", "messages": USER, "stream": True}
        seen = [_read_until_stalled(hanging.base_url, body) for _ in range(8)]
        before = [content for headers, content in seen if not headers]
        midway = [content for headers, content in seen if headers]
        assert before and midway, seen  # seed 7 draws both kinds in 8 requests
        assert set(midway) == {"one two three four"}  # half of the answer, then nothing
        faults = hanging.stats()["faults"]
        assert faults == {"hang_before_headers": len(before), "hang_midstream": len(midway)}
        # a litellm call gives up on either kind after its timeout
        with pytest.raises((litellm.Timeout, MidStreamFallbackError)):
            list(litellm.completion(model="openai/hangs", messages=USER, stream=True, timeout=0.3, **kwargs(hanging)))


def test_fault_draws_follow_the_rates_and_the_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        server = FakeLLM(fail_rate=0.10, hang_rate=0.05, seed=seed)
        return [server._draw_fault() for _ in range(4000)]

    first = draws(3)
    assert first == draws(3) and first != draws(4)
    assert 0.085 < first.count("500") / 4000 < 0.115
    hangs = sum(1 for fault in first if fault and fault.startswith("hang"))
    assert 0.035 < hangs / 4000 < 0.065
    with pytest.raises(ValueError):
        FakeLLM(fail_rate=0.7, hang_rate=0.4)


def test_a_tool_round_model_calls_the_first_tool_then_answers(fake: FakeLLM) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    first = litellm.completion(model="openai/load-tool-round", messages=USER, tools=tools, **kwargs(fake))
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"round": 1}
    answered = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    second = litellm.completion(model="openai/load-tool-round", messages=answered, tools=tools, **kwargs(fake))
    assert second.choices[0].message.content == "ok" and not second.choices[0].message.tool_calls
