"""A scripted, OpenAI-compatible chat-completions server for tests, benchmarks and `make dev`.

The server speaks just enough of the OpenAI wire protocol for litellm (model ``"openai/<name>"``)
to talk to it: ``POST /v1/chat/completions`` (streamed or not, honouring
``stream_options.include_usage``), ``POST /v1/embeddings`` (deterministic unit vectors) and
``GET /v1/models``.

Answers are scripted per request ``model`` so concurrent tests never collide::

    with FakeLLM() as fake:
        fake.script("weather-test", [
            tool_calls([("call_1", "get_weather", '{"city": "Paris"}')]),
            text("It is sunny in Paris."),
        ])
        litellm.completion(model="openai/weather-test", api_base=fake.base_url, api_key="x", ...)
        assert fake.requests("weather-test")[1]["messages"][-1]["role"] == "tool"

Each request pops the next turn queued for its model; when the queue is empty the server answers
with the model's default turn (``set_default``), else the server-wide default (plain text "ok").

Turn kinds (builders below): ``text``, ``tool_calls``, ``length``, ``error`` (plus the shortcuts
``rate_limited``, ``server_error``, ``context_length_exceeded``), ``break_midstream`` and
``delay(seconds, turn)``. Every builder takes ``delay`` (seconds before the first byte, i.e.
before the response headers), ``ttft`` (seconds from the headers to the first token) and ``tps``
(tokens per second; the server emits one token per chunk at that rate). ``ttft``/``tps`` left as
``None`` fall back to the server-wide defaults given to ``FakeLLM(ttft=..., tps=...)``, which is
how the benchmark times requests it does not script.

Usage: ``prompt_tokens`` is estimated (~4 characters a token) unless the turn sets it;
``completion_tokens`` is the number of chunks of content and tool-call arguments emitted.

Every request body is recorded: ``fake.requests(model)`` (bodies) and ``fake.recorded(model)``
(bodies with path and headers).

A model whose name ends in ``-tool-round`` needs no script: it answers a request whose last
message is the user's with a call of the request's first tool, and a tool result with its
default turn, so a load of clients can each make one tool round without scripting anything.

Faults, server-wide (``FakeLLM(fail_rate=0.1, hang_rate=0.05, seed=1)``, or ``--fail-rate``,
``--hang-rate``, ``--seed``): each chat completion is, at random, answered with HTTP 500
(``fail_rate``) or hangs (``hang_rate``): half of the hangs never send the response headers,
the other half stream half of the answer and then stall; both stay open until the client goes
away. Scripted turns are not consumed by a 500 or a hang before the headers. ``fake.faults``
counts what was injected; ``GET /_fake/stats`` returns it with the number of chat requests.

CLI for manual use::

    python -m tests.harness.fake_llm --port 9999 --ttft 0.2 --tps 50
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import uvicorn

__all__ = [
    "FakeLLM",
    "ToolCall",
    "Turn",
    "break_midstream",
    "context_length_exceeded",
    "delay",
    "error",
    "length",
    "rate_limited",
    "server_error",
    "text",
    "tool_calls",
]

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


# --------------------------------------------------------------------------------------------
# Turns
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the JSON text exactly as the model "wrote" it


@dataclasses.dataclass(frozen=True)
class Turn:
    """One scripted answer. Build with the helper functions rather than directly."""

    kind: str  # "text" | "tool_calls" | "error" | "break" | "hang" (a fault: stalls half-way)
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    # timing
    delay: float = 0.0  # before any byte (before the response headers)
    ttft: float | None = None  # headers -> first token; None: server default
    tps: float | None = None  # tokens per second; None: server default; 0: as fast as possible
    # tokenisation: None splits content into word tokens; an int splits into chunks of that many chars
    chunk_size: int | None = None
    args_chunk_size: int = 8  # characters of tool-call arguments per streamed fragment
    # usage
    prompt_tokens: int | None = None  # None: estimated from the request (~4 chars per token)
    # errors
    status: int = 200
    error_message: str = ""
    error_type: str | None = None
    error_code: str | None = None
    error_param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def with_timing(self, *, delay: float | None = None, ttft: float | None = None, tps: float | None = None) -> Turn:
        changes: dict[str, Any] = {}
        if delay is not None:
            changes["delay"] = delay
        if ttft is not None:
            changes["ttft"] = ttft
        if tps is not None:
            changes["tps"] = tps
        return dataclasses.replace(self, **changes)

    # -- tokenisation -------------------------------------------------------------------------

    def content_tokens(self) -> list[str]:
        return _split(self.content or "", self.chunk_size)

    def argument_fragments(self, call: ToolCall) -> list[str]:
        return _split(call.arguments, self.args_chunk_size)


def _split(value: str, chunk_size: int | None) -> list[str]:
    if not value:
        return []
    if chunk_size:
        return [value[i : i + chunk_size] for i in range(0, len(value), chunk_size)]
    return _TOKEN_RE.findall(value)


def text(
    content: str,
    *,
    chunk_size: int | None = None,
    finish_reason: str = "stop",
    delay: float = 0.0,
    ttft: float | None = None,
    tps: float | None = None,
    prompt_tokens: int | None = None,
) -> Turn:
    """A plain assistant answer, streamed one word-token (or ``chunk_size`` chars) per chunk."""
    return Turn(
        kind="text",
        content=content,
        chunk_size=chunk_size,
        finish_reason=finish_reason,
        delay=delay,
        ttft=ttft,
        tps=tps,
        prompt_tokens=prompt_tokens,
    )


def length(content: str, **kwargs: Any) -> Turn:
    """A truncated answer: finish_reason "length"."""
    return text(content, finish_reason="length", **kwargs)


def tool_calls(
    calls: Iterable[ToolCall | tuple[str, str, str | dict[str, Any]]],
    *,
    content: str | None = None,
    args_chunk_size: int = 8,
    chunk_size: int | None = None,
    delay: float = 0.0,
    ttft: float | None = None,
    tps: float | None = None,
    prompt_tokens: int | None = None,
) -> Turn:
    """One or more (parallel) tool calls, optionally preceded by some text ``content``.

    ``calls`` are ``ToolCall``s or ``(id, name, arguments)`` tuples; ``arguments`` is JSON text
    (sent verbatim) or a dict (serialised).
    """
    built: list[ToolCall] = []
    for call in calls:
        if isinstance(call, ToolCall):
            built.append(call)
        else:
            call_id, name, arguments = call
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            built.append(ToolCall(call_id, name, arguments))
    return Turn(
        kind="tool_calls",
        content=content,
        tool_calls=tuple(built),
        finish_reason="tool_calls",
        args_chunk_size=args_chunk_size,
        chunk_size=chunk_size,
        delay=delay,
        ttft=ttft,
        tps=tps,
        prompt_tokens=prompt_tokens,
    )


def error(
    status: int,
    message: str,
    type: str | None = None,  # noqa: A002 - mirrors the OpenAI error field
    code: str | None = None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> Turn:
    """An HTTP error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return Turn(
        kind="error",
        status=status,
        error_message=message,
        error_type=type,
        error_code=code,
        error_param=param,
        headers=tuple((headers or {}).items()),
        delay=delay,
    )


def rate_limited(message: str = "Rate limit reached for requests", *, retry_after: float | None = None) -> Turn:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return error(429, message, "requests", "rate_limit_exceeded", headers=headers)


def server_error(message: str = "The server had an error while processing your request.") -> Turn:
    return error(500, message, "server_error", None)


def context_length_exceeded(
    message: str = (
        "This model's maximum context length is 8192 tokens. However, your messages resulted in "
        "9000 tokens. Please reduce the length of the messages."
    ),
) -> Turn:
    return error(400, message, "invalid_request_error", "context_length_exceeded", param="messages")


def delay(seconds: float, turn: Turn | None = None) -> Turn:
    """``turn`` (default: the text "ok") held back ``seconds`` before the first byte is sent."""
    return (turn or text("ok")).with_timing(delay=seconds)


def break_midstream(content_before: str = "This answer will be cut", **kwargs: Any) -> Turn:
    """Streams ``content_before`` then drops the connection: no finish_reason, no [DONE].

    For a non-streamed request, announces a Content-Length and closes after part of the body.
    """
    return dataclasses.replace(text(content_before, **kwargs), kind="break", finish_reason="")


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


class _AbortConnection(Exception):
    """Raised inside the ASGI app to make uvicorn drop the connection mid-response."""


def _contains_abort(exc: BaseException | None, depth: int = 0) -> bool:
    if exc is None or depth > 10:
        return False
    if isinstance(exc, _AbortConnection):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains_abort(e, depth + 1) for e in exc.exceptions)
    return _contains_abort(exc.__cause__, depth + 1) or _contains_abort(exc.__context__, depth + 1)


class _QuietAbortFilter(logging.Filter):
    """Keep uvicorn from logging the scripted connection drops and the shutdown of idle streams."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and (
            _contains_abort(record.exc_info[1]) or isinstance(record.exc_info[1], asyncio.CancelledError)
        ):
            return False
        return not str(record.msg).startswith("Cancel %s running task(s)")


_uvicorn_error_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _QuietAbortFilter) for f in _uvicorn_error_logger.filters):
    _uvicorn_error_logger.addFilter(_QuietAbortFilter())


def _estimate_prompt_tokens(body: dict[str, Any]) -> int:
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
        for call in message.get("tool_calls") or []:
            chars += len(json.dumps(call))
        chars += 16  # role and framing
    if body.get("tools"):
        chars += len(json.dumps(body["tools"]))
    return max(1, chars // 4)


@dataclasses.dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float


class FakeLLM:
    """A scripted OpenAI-compatible server on 127.0.0.1 (a free port unless ``port`` is given)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttft: float = 0.0,
        tps: float = 0.0,
        default_turn: Turn | None = None,
        fail_rate: float = 0.0,
        hang_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if fail_rate < 0 or hang_rate < 0 or fail_rate + hang_rate > 1:
            raise ValueError("fail_rate and hang_rate are shares of requests: each >= 0, together <= 1")
        self.host = host
        self.port = port
        self.ttft = ttft
        self.tps = tps
        self.default_turn = default_turn or text("ok")
        self._lock = threading.Lock()
        self._scripts: dict[str, collections.deque[Turn]] = collections.defaultdict(collections.deque)
        self._defaults: dict[str, Turn] = {}
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self.fail_rate, self.hang_rate = fail_rate, hang_rate
        self._random = random.Random(seed)
        self.faults: collections.Counter[str] = collections.Counter()  # "500", "hang_before_headers", "hang_midstream"
        self.chat_requests = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            log_level="warning",
            log_config=None,
            access_log=False,
            lifespan="off",
            interface="asgi3",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
            backlog=4096,
        )

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(4096)
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        return sock

    def start(self) -> FakeLLM:
        if self._thread is not None:
            return self
        self._socket = self._bind()
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run in the current thread until interrupted (used by the CLI)."""
        self._socket = self._bind()
        uvicorn.Server(self._config()).run(sockets=[self._socket])

    # -- scripting ----------------------------------------------------------------------------

    def script(self, model: str, turns: Turn | Sequence[Turn]) -> None:
        """Queue turns for ``model``; each request for that model pops the next one."""
        if isinstance(turns, Turn):
            turns = [turns]
        with self._lock:
            self._scripts[model].extend(turns)

    def set_default(self, turn: Turn, model: str | None = None) -> None:
        """The turn served when ``model``'s queue is empty (server-wide when ``model`` is None)."""
        with self._lock:
            if model is None:
                self.default_turn = turn
            else:
                self._defaults[model] = turn

    def pending(self, model: str) -> int:
        """How many scripted turns for ``model`` have not been served yet."""
        with self._lock:
            return len(self._scripts.get(model, ()))

    def reset(self, model: str | None = None) -> None:
        with self._lock:
            if model is None:
                self._scripts.clear()
                self._defaults.clear()
                self._requests.clear()
            else:
                self._scripts.pop(model, None)
                self._defaults.pop(model, None)
                self._requests = [r for r in self._requests if r.body.get("model") != model]

    def _next_turn(self, model: str) -> Turn:
        with self._lock:
            queue = self._scripts.get(model)
            if queue:
                return queue.popleft()
            return self._defaults.get(model, self.default_turn)

    def _tool_round(self, model: str, body: dict[str, Any]) -> Turn | None:
        """A ``-tool-round`` model's unscripted answer: a call of the request's first tool, then
        (once the call's result is the last message) the default turn. None for other models."""
        with self._lock:
            if not model.endswith("-tool-round") or self._scripts.get(model) or model in self._defaults:
                return None
        messages = body.get("messages") or [{}]
        tools = body.get("tools") or []
        if messages[-1].get("role") == "tool" or not tools:
            return self.default_turn
        name = str(tools[0].get("function", {}).get("name", "tool"))
        return tool_calls([(f"call_fake{next(self._ids):08d}", name, {"round": 1})])

    def _draw_fault(self) -> str | None:
        """Whether this chat request fails ("500"), hangs ("hang_*"), or is served (None)."""
        with self._lock:
            self.chat_requests += 1
            if not (self.fail_rate or self.hang_rate):
                return None
            draw = self._random.random()
            if draw < self.fail_rate:
                fault = "500"
            elif draw < self.fail_rate + self.hang_rate:
                fault = "hang_before_headers" if self._random.random() < 0.5 else "hang_midstream"
            else:
                return None
            self.faults[fault] += 1
            return fault

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"chat_requests": self.chat_requests, "faults": dict(self.faults)}

    # -- recording ----------------------------------------------------------------------------

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies received for ``model`` (all models when None), oldest first."""
        return [r.body for r in self.recorded(model)]

    def recorded(self, model: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if model is None or r.body.get("model") == model]

    # -- ASGI app -----------------------------------------------------------------------------

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/")
        if path in ("/v1/chat/completions", "/chat/completions", "/v1/embeddings", "/embeddings") and method == "POST":
            body = await self._record(scope, receive)
            if body is None:
                await _send_json(send, 400, _error_body("Invalid JSON body", "invalid_request_error"))
            elif path.endswith("/embeddings"):
                status, payload = _embeddings(body)
                await _send_json(send, status, payload)
            else:
                await _until_disconnect(self._chat(body, send), receive)
        elif path in ("/v1/models", "/models") and method == "GET":
            with self._lock:
                names = sorted({"fake", *self._scripts, *self._defaults})
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake-llm"} for n in names]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif path in ("/health", "/v1/health") and method == "GET":
            await _send_json(send, 200, {"status": "ok"})
        elif path == "/_fake/stats" and method == "GET":
            await _send_json(send, 200, self.stats())
        else:
            await _send_json(send, 404, _error_body(f"Unknown route {method} {path}", "invalid_request_error"))

    async def _record(self, scope: dict[str, Any], receive: Any) -> dict[str, Any] | None:
        """The request's JSON body, recorded with its headers; None if it is not JSON."""
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        with self._lock:
            self._requests.append(RecordedRequest(scope["path"], headers, body, time.time()))
        return dict(body)

    async def _chat(self, body: dict[str, Any], send: Any) -> None:
        model = str(body.get("model", ""))
        fault = self._draw_fault()
        if fault == "500":
            payload = _error_body("The server had an error while processing your request. (injected)", "server_error")
            await _send_json(send, 500, payload)
            return
        if fault == "hang_before_headers" or (fault == "hang_midstream" and not body.get("stream")):
            await asyncio.Event().wait()  # until the client goes away (_until_disconnect cancels this)
        turn = self._tool_round(model, body) or self._next_turn(model)
        if fault == "hang_midstream":
            turn = dataclasses.replace(turn, kind="hang")
        if turn.delay:
            await asyncio.sleep(turn.delay)
        if turn.kind == "error":
            payload = _error_body(turn.error_message, turn.error_type, turn.error_code, turn.error_param)
            await _send_json(send, turn.status, payload, extra_headers=turn.headers)
            return
        ttft = self.ttft if turn.ttft is None else turn.ttft
        tps = self.tps if turn.tps is None else turn.tps
        completion_id = f"chatcmpl-fake{next(self._ids):08d}"
        created = int(time.time())
        prompt_tokens = turn.prompt_tokens if turn.prompt_tokens is not None else _estimate_prompt_tokens(body)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await self._stream(turn, send, model, completion_id, created, prompt_tokens, ttft, tps, include_usage)
        else:
            await self._complete(turn, send, model, completion_id, created, prompt_tokens, ttft, tps)

    async def _complete(
        self,
        turn: Turn,
        send: Any,
        model: str,
        completion_id: str,
        created: int,
        prompt_tokens: int,
        ttft: float,
        tps: float,
    ) -> None:
        tokens = turn.content_tokens()
        n_tokens = len(tokens) + sum(len(turn.argument_fragments(c)) for c in turn.tool_calls)
        # A non-streamed answer arrives when the whole generation would have finished.
        total = ttft + (max(n_tokens - 1, 0) / tps if tps else 0.0)
        if total:
            await asyncio.sleep(total)
        message: dict[str, Any] = {"role": "assistant", "content": turn.content, "refusal": None}
        if turn.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in turn.tool_calls
            ]
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": turn.finish_reason or None}
            ],
            "usage": _usage(prompt_tokens, n_tokens),
        }
        data = json.dumps(payload).encode()
        if turn.kind == "break":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True})
            raise _AbortConnection("scripted break")
        await _send_raw(send, 200, data, b"application/json")

    async def _stream(
        self,
        turn: Turn,
        send: Any,
        model: str,
        completion_id: str,
        created: int,
        prompt_tokens: int,
        ttft: float,
        tps: float,
        include_usage: bool,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", completion_id.encode()),
                ],
            }
        )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                data["usage"] = None
            return data

        async def emit(data: dict[str, Any] | str) -> None:
            line = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
            await send({"type": "http.response.body", "body": f"data: {line}\n\n".encode(), "more_body": True})

        # Every token (content piece or tool-argument fragment) is one chunk, emitted on a fixed
        # schedule: token i at start + ttft + i / tps.
        start = time.monotonic()
        emitted = 0

        async def pace() -> None:
            nonlocal emitted
            target = start + ttft + (emitted / tps if tps else 0.0)
            wait = target - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            emitted += 1

        if ttft:
            await asyncio.sleep(ttft)
        # OpenAI's first chunk carries the role and an empty content.
        await emit(chunk({"role": "assistant", "content": "", "refusal": None}))
        tokens = turn.content_tokens()
        for number, token in enumerate(tokens):
            if turn.kind == "hang" and number == len(tokens) // 2:
                await asyncio.Event().wait()  # stalls half-way until the client goes away
            await pace()
            await emit(chunk({"content": token}))
        if turn.kind == "hang":
            await asyncio.Event().wait()  # a tool-call turn stalls before its calls
        for index, call in enumerate(turn.tool_calls):
            await pace()
            await emit(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for fragment in turn.argument_fragments(call):
                await pace()
                await emit(chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
        if turn.kind == "break":
            raise _AbortConnection("scripted break")
        await emit(chunk({}, turn.finish_reason))
        if include_usage:
            completion_tokens = len(turn.content_tokens()) + sum(
                len(turn.argument_fragments(c)) for c in turn.tool_calls
            )
            await emit(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": _usage(prompt_tokens, completion_tokens),
                }
            )
        await emit("[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(handler: Any, receive: Any) -> None:
    """Run ``handler``, cancelling it if the client goes away (e.g. after a client-side timeout)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(handler)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.cancelled():
        return
    with contextlib.suppress(asyncio.CancelledError):
        await task  # re-raises _AbortConnection so uvicorn drops the connection


def _embeddings(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``POST /v1/embeddings``: a unit vector per input, the same for the same text (from its
    SHA-256), of ``dimensions`` (default 8). A model whose name ends in ``-broken`` fails (500);
    one ending in ``-ignores-dimensions`` always answers with 8 dimensions."""
    model = str(body.get("model", ""))
    if model.endswith("-broken"):
        return 500, _error_body("The embedding model is broken (scripted).", "server_error")
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    dimensions = 8 if model.endswith("-ignores-dimensions") else int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        seed = hashlib.sha256(str(text).encode()).digest()
        raw = [((seed[i % len(seed)] + i) % 251) - 125.0 or 1.0 for i in range(dimensions)]
        norm = sum(x * x for x in raw) ** 0.5
        data.append({"object": "embedding", "index": index, "embedding": [x / norm for x in raw]})
    tokens = sum(len(str(t).split()) for t in texts)
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _error_body(message: str, type_: str | None, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


async def _send_raw(
    send: Any, status: int, data: bytes, content_type: bytes, extra_headers: Sequence[tuple[str, str]] = ()
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(data)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _send_json(send: Any, status: int, payload: Any, extra_headers: Sequence[tuple[str, str]] = ()) -> None:
    await _send_raw(send, status, json.dumps(payload).encode(), b"application/json", extra_headers)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible chat-completions API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--tps", type=float, default=0.0, help="tokens per second (0: no pacing)")
    parser.add_argument("--text", default=None, help="the answer to every request")
    parser.add_argument("--words", type=int, default=30, help="length of the generated answer when --text is unset")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of chat requests answered with HTTP 500")
    parser.add_argument("--hang-rate", type=float, default=0.0, help="share of chat requests that hang")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
    args = parser.parse_args(argv)
    answer = args.text or " ".join(f"word{i}" for i in range(1, args.words + 1))
    fake = FakeLLM(
        host=args.host,
        port=args.port,
        ttft=args.ttft,
        tps=args.tps,
        default_turn=text(answer),
        fail_rate=args.fail_rate,
        hang_rate=args.hang_rate,
        seed=args.seed,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger(__name__).info(
        "fake LLM on http://%s:%d/v1 (ttft=%ss, tps=%s); use model 'openai/<anything>'",
        args.host,
        args.port,
        args.ttft,
        args.tps,
    )
    with contextlib.suppress(KeyboardInterrupt):
        fake.serve_forever()


if __name__ == "__main__":
    main()
