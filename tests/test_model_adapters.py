"""The two model adapters (``agent/models``) behave alike: the same request on the wire, the same
chunks, and every provider failure mapped to the same ``last_error`` code and sentence.

Each case runs the same scripted turn of the fake OpenAI-compatible model through the direct
adapter (httpx) and through litellm (``MODEL_ADAPTER=litellm``), in this process,
and compares what :func:`stream_completion` yielded or raised.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from assistants_core.agent import model
from assistants_core.agent.model import ModelError, ModelRequest, stream_completion
from assistants_core.agent.models import INVALID, PROVIDER_DOWN, adapter_for, litellm_chat, openai_chat
from assistants_core.config import settings
from tests.harness.fake_llm import (
    FakeLLM,
    Turn,
    break_midstream,
    context_length_exceeded,
    error,
    length,
    rate_limited,
    server_error,
    text,
    tool_calls,
)

TIMEOUT_S = 1.0
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture
def provider(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-adapter-test-0123456789")
    monkeypatch.setenv("MODEL_TIMEOUT_SECONDS", str(TIMEOUT_S))
    monkeypatch.setattr(model, "_credentials_loaded", True)
    settings.cache_clear()
    yield fake_llm
    settings.cache_clear()


def _outcome(fake: FakeLLM, name: str, turn: Turn, adapter: str, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Any:
    """What one streamed call of a fresh model ``name`` gave: its chunks, or its ModelError."""
    monkeypatch.setenv("MODEL_ADAPTER", adapter)
    fake.script(name, [turn])
    request = ModelRequest(f"openai/{name}", [{"role": "user", "content": "Hi"}], **extra)
    expected = openai_chat if adapter == "auto" else litellm_chat
    assert adapter_for(request) is expected
    try:
        return list(stream_completion(request))
    except ModelError as failure:
        return (failure.code, failure.message)


def _both(fake: FakeLLM, case: str, turn: Turn, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> tuple[Any, Any]:
    direct = _outcome(fake, f"adapters-{case}-direct", turn, "auto", monkeypatch, **extra)
    through_litellm = _outcome(fake, f"adapters-{case}-litellm", turn, "litellm", monkeypatch, **extra)
    if isinstance(direct, tuple) and isinstance(through_litellm, tuple):  # sentences name the model
        direct = (direct[0], direct[1].replace(f"adapters-{case}-direct", "M"))
        through_litellm = (through_litellm[0], through_litellm[1].replace(f"adapters-{case}-litellm", "M"))
    return direct, through_litellm


@pytest.mark.parametrize(
    ("case", "turn", "extra"),
    [
        ("text", text("Hello there, friend.", chunk_size=4, prompt_tokens=7), {}),
        ("length", length("cut short"), {}),
        (
            "tools",
            tool_calls([("call_1", "get_weather", '{"city": "Paris"}'), ("call_2", "get_weather", "{}")]),
            {"tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True},
        ),
        ("settings", text("ok"), {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "reasoning_effort": "low"}),
        ("json", text('{"a": 1}'), {"response_format": {"type": "json_object"}}),
    ],
)
def test_same_chunks_and_same_request(
    provider: FakeLLM, monkeypatch: pytest.MonkeyPatch, case: str, turn: Turn, extra: dict[str, Any]
) -> None:
    direct, through_litellm = _both(provider, case, turn, monkeypatch, **extra)
    assert isinstance(direct, list) and direct, direct
    assert direct == through_litellm
    (sent_direct,) = provider.requests(f"adapters-{case}-direct")
    (sent_litellm,) = provider.requests(f"adapters-{case}-litellm")
    sent_direct["model"] = sent_litellm["model"] = "x"
    assert sent_direct == sent_litellm  # what reached the server, byte for byte once parsed


@pytest.mark.parametrize(
    ("case", "turn"),
    [
        ("429", rate_limited()),
        ("500", server_error()),
        ("context", context_length_exceeded()),
        ("400", error(400, "Invalid 'tools[0].function.name'.", "invalid_request_error", "invalid_value")),
        ("401", error(401, "Incorrect API key provided: sk-adapter-test-0123456789.", "invalid_request_error")),
        ("402", error(402, "Insufficient credit.", "billing_error")),
        ("403", error(403, "Project does not have access.", "permission_error")),
        ("404", error(404, "The model `x` does not exist.", "invalid_request_error", "model_not_found")),
        ("408", error(408, "Request timed out.")),
        ("422", error(422, "Unprocessable.")),
        ("502", error(502, "Bad gateway.")),
        ("503", error(503, "Overloaded.")),
        ("504", error(504, "Gateway timeout.")),
        ("policy", error(400, "Invalid prompt: violating our usage policy.", "invalid_request_error")),
        ("midstream", break_midstream("The first half")),
        ("before-headers", text("late", delay=TIMEOUT_S * 3)),
        ("stalled", text("one two three four", ttft=0, tps=1 / (TIMEOUT_S * 3))),
    ],
)
def test_same_failure(provider: FakeLLM, monkeypatch: pytest.MonkeyPatch, case: str, turn: Turn) -> None:
    direct, through_litellm = _both(provider, case, turn, monkeypatch)
    assert isinstance(direct, tuple), direct
    assert direct == through_litellm
    assert "sk-adapter-test" not in direct[1]


def test_unreachable_provider_reads_the_same(provider: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    direct, through_litellm = _both(provider, "refused", text("never"), monkeypatch)
    assert direct == through_litellm == ("server_error", "The model provider could not be reached; try the run again.")


@pytest.mark.parametrize(
    ("model_name", "base", "extra", "direct"),
    [
        ("openai/bench", "http://127.0.0.1:1/v1", {}, True),
        ("openai/llama3", "http://vllm.internal:8000/v1", {"tools": TOOLS}, True),
        ("openai/bench", None, {}, False),  # api.openai.com
        ("openai/bench", "https://api.openai.com/v1", {}, False),  # OpenAI's tool-schema flattening
        ("openai/gpt-4o", "http://127.0.0.1:1/v1", {}, False),  # OpenAI's catalogue: its parameter map
        ("openai/o3", "http://127.0.0.1:1/v1", {}, False),
        ("openai/my-gpt-5-proxy", "http://127.0.0.1:1/v1", {}, False),  # reasoning family by name
        ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "http://127.0.0.1:1/v1", {}, False),
        ("gpt-4o-mini", "http://127.0.0.1:1/v1", {}, False),
        (
            "openai/bench",
            "http://127.0.0.1:1/v1",
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"pattern": "(?i)x"}}}]},
            False,  # litellm drops regex patterns Python cannot compile
        ),
    ],
)
def test_which_adapter(
    monkeypatch: pytest.MonkeyPatch, model_name: str, base: str | None, extra: dict[str, Any], direct: bool
) -> None:
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("MODEL_ADAPTER", raising=False)
    if base is None:
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    else:
        monkeypatch.setenv("OPENAI_BASE_URL", base)
    request = ModelRequest(model_name, [{"role": "user", "content": "Hi"}], **extra)
    assert (adapter_for(request) is openai_chat) is direct


def test_messages_litellm_rewrites_go_through_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.delenv("MODEL_ADAPTER", raising=False)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto"}}
    kept = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    assert adapter_for(ModelRequest("openai/bench", kept)) is openai_chat
    for rewritten in (
        [{"role": "user", "content": [{"type": "image_url", "image_url": "https://example.com/a.png"}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x", "format": "image/png"}}]}],
        [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "out"}]}],
    ):
        assert adapter_for(ModelRequest("openai/bench", rewritten)) is litellm_chat, rewritten


def test_a_missing_key_reads_the_same(provider: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    direct, through_litellm = _both(provider, "no-key", text("never"), monkeypatch)
    assert direct == through_litellm == ("server_error", PROVIDER_DOWN)  # litellm: an InternalServerError
    assert provider.requests("adapters-no-key-direct") == []  # refused before any request, as litellm does


def test_an_error_event_in_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OpenAI-compatible server (vLLM, sglang) may answer 200 and then an error event: a client
    error (4xx but 429) keeps its meaning, anything else is the provider's error, as litellm's
    stream wrapper has it."""
    for code, expected in (
        (400, ("invalid_prompt", INVALID)),
        (429, ("server_error", PROVIDER_DOWN)),
        (None, ("server_error", PROVIDER_DOWN)),
    ):
        lines = [f"data: {json.dumps({'error': {'message': 'bad', 'code': code}})}"]
        response = httpx.Response(200, content="\n\n".join(lines).encode())
        with pytest.raises(openai_chat.ProviderError) as raised:
            list(openai_chat._events(response))
        wrapped = openai_chat.MidStreamError("bad")
        wrapped.__cause__ = raised.value
        assert openai_chat.kind(wrapped) == expected, code


def test_the_direct_adapter_waits_and_retries_as_the_openai_sdk_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """openai 2.54's _calculate_retry_timeout and _should_retry, which litellm's route follows."""
    from email.utils import format_datetime

    from assistants_core.agent.models import openai_chat

    assert openai_chat.retry_delay(0, {"retry-after-ms": "150"}) == 0.15
    assert openai_chat.retry_delay(0, {"retry-after": "2"}) == 2.0
    monkeypatch.setattr(openai_chat.time, "time", lambda: 1_000_000.0)
    in_ten_s = format_datetime(datetime.fromtimestamp(1_000_010.0, tz=UTC), usegmt=True)
    assert openai_chat.retry_delay(0, {"retry-after": in_ten_s}) == 10.0
    for attempt, ceiling in ((0, 0.5), (2, 2.0), (6, 8.0)):
        for headers in ({}, {"retry-after": "0"}, {"retry-after": "121"}, {"retry-after": "soon"}):
            assert ceiling * 0.75 <= openai_chat.retry_delay(attempt, headers) <= ceiling
    assert [openai_chat.should_retry(code, {}) for code in (400, 404, 408, 409, 429, 500, 529)] == [
        False, False, True, True, True, True, True,
    ]  # fmt: skip
    assert openai_chat.should_retry(400, {"x-should-retry": "true"})
    assert not openai_chat.should_retry(503, {"x-should-retry": "false"})
    assert not openai_chat.should_retry(429, {"retry-after": "121"})  # longer than the SDK waits
