"""Calling a model, reduced to the few things a turn needs.

``stream_completion`` yields plain chunks (text, tool-call fragments, finish, usage) and
raises :class:`ModelError` with the run's ``last_error`` code for any provider failure. The
call itself goes through an adapter (``models/``): OpenAI's Chat Completions protocol over httpx
for OpenAI-compatible servers where litellm would pass the request through unchanged, litellm for every other model.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from ..model_routing import route

logger = Logger()
_credentials_loaded = False
_credentials_lock = threading.Lock()
# Variables whose values are credentials: those loaded below, and any named like one.
_credential_names: set[str] = set()
_CREDENTIAL_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


class ModelError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Finish:
    reason: str


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int


Chunk = TextDelta | ToolCallDelta | Finish | TokenUsage


@dataclass
class ModelRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None

    def body(self) -> dict[str, Any]:
        """The Chat Completions request (the adapters add their client settings)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.tools:
            body["tools"] = self.tools
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
            if self.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = self.parallel_tool_calls
        for name in ("temperature", "top_p", "max_tokens", "reasoning_effort"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.response_format not in (None, "auto"):
            body["response_format"] = self.response_format
        return body


def load_provider_credentials(*, force: bool = False) -> None:
    """Put provider API keys from SSM (and an optional secret) into the environment, once per
    execution environment, before the first model call (never at import: no network call there).

    Each parameter under ``MODEL_CREDENTIALS_PATH`` becomes a variable of its name
    (``.../OPENAI_API_KEY``); ``MODEL_CREDENTIALS_SECRET`` may name a Secrets Manager secret
    holding a JSON object of variables. Variables already set win, so a local environment
    (or Bedrock through the IAM role) needs nothing here. ``force`` reads them again, and then
    the stored values replace those it loaded before (a restored snapshot's may have rotated).
    """
    global _credentials_loaded
    with _credentials_lock:
        if _credentials_loaded and not force:
            return
        _credentials_loaded = True
        from aws_lambda_powertools.utilities import parameters

        path = os.environ.get("MODEL_CREDENTIALS_PATH")
        if path:
            try:
                values = parameters.get_parameters(path, decrypt=True, max_age=300, force_fetch=force)
                for name, value in values.items():
                    _set_credential(name.rsplit("/", 1)[-1], str(value))
            except Exception as error:  # no parameters, or no permission: providers may not need any
                logger.warning("provider credentials not loaded from SSM", extra={"path": path, "error": str(error)})
        secret = os.environ.get("MODEL_CREDENTIALS_SECRET")
        if secret:
            try:
                for name, value in json.loads(
                    str(parameters.get_secret(secret, max_age=300, force_fetch=force))
                ).items():
                    _set_credential(name, str(value))
            except Exception as error:
                logger.warning("provider credentials not loaded from Secrets Manager", extra={"error": str(error)})


def _set_credential(name: str, value: str) -> None:
    """A loaded value, unless the environment set the variable itself (which always wins)."""
    if name not in os.environ or name in _credential_names:
        os.environ[name] = value
        _credential_names.add(name)


def redact_credentials(message: str) -> str:
    """``message`` with the value of every provider credential replaced by ``***``.

    A provider's error may quote the key it was sent (and litellm's message quotes the
    provider's); the message becomes a run's ``last_error``, an event and a log line.
    """
    for name, value in os.environ.items():
        if len(value) >= 12 and value in message and (name in _credential_names or _CREDENTIAL_NAME.search(name)):
            message = message.replace(value, "***")
    return message


def warm_up() -> None:
    """Load ahead what the first litellm call would (seconds): for an init whose time no user
    waits for, such as a SnapStart snapshot's. Without one, the agent step does not call it:
    the direct adapter needs nothing of it (README, Benchmark > Cold start)."""
    from .models import litellm_chat

    litellm_chat.warm_up()


def stream_completion(request: ModelRequest) -> Generator[Chunk, None, None]:
    if route(request.model) is None:
        raise unavailable(request.model)
    load_provider_credentials()
    from .models import adapter_for

    adapter = adapter_for(request)
    try:
        yield from adapter.stream(request)
    except ModelError:
        raise
    except Exception as error:
        raise classify(error, request.model, adapter.kind(error)) from error


def chunks_of(chunk: Any) -> Iterator[Chunk]:
    """The plain chunks of one streamed Chat Completions chunk: a parsed JSON object (the direct
    adapter) or litellm's object; the same fields either way."""
    get = _field if isinstance(chunk, dict) else getattr
    usage = get(chunk, "usage", None)
    if usage is not None and (get(usage, "prompt_tokens", None) or get(usage, "completion_tokens", None)):
        yield TokenUsage(int(get(usage, "prompt_tokens", 0) or 0), int(get(usage, "completion_tokens", 0) or 0))
    for choice in get(chunk, "choices", None) or []:
        delta = get(choice, "delta", None)
        if delta is not None:
            content = get(delta, "content", None)
            if content:
                yield TextDelta(content)
            for call in get(delta, "tool_calls", None) or []:
                function = get(call, "function", None)
                yield ToolCallDelta(
                    index=int(get(call, "index", 0) or 0),
                    id=get(call, "id", None),
                    name=get(function, "name", None) if function else None,
                    arguments=(get(function, "arguments", None) or "") if function else "",
                )
        reason = get(choice, "finish_reason", None)
        if reason:
            yield Finish(str(reason))


def _field(value: Any, name: str, default: Any) -> Any:
    """``getattr`` for the parsed JSON of a chunk (nested values are dicts too)."""
    return value.get(name, default) if isinstance(value, dict) else getattr(value, name, default)


def classify(error: Exception, model: str = "", kind: tuple[str, str] | None = None) -> ModelError:
    """Map a provider failure to the run's ``last_error``: OpenAI's code and one sentence a user
    can act on (``kind``, from the adapter that raised it). The library's own message
    (multi-line, naming the library and its classes) goes to the log only."""
    from .models import UNREACHABLE

    code, sentence = "server_error", "The model call failed unexpectedly; try the run again."
    if _unreachable(error):  # litellm reports some refused connections as 500s
        sentence = UNREACHABLE
    elif kind is not None:
        code, sentence = kind
    logger.warning(
        "model call failed",
        extra={
            "model": model,
            "code": code,
            "error_type": type(error).__name__,
            "error": redact_credentials(str(error)),
        },
    )
    return ModelError(code, sentence.format(model=f"`{model}`" if model else "the run's model"))


def _unreachable(error: BaseException) -> bool:
    """Whether the call never reached the provider (connection refused, unknown host)."""
    import httpx

    seen: BaseException | None = error
    for _ in range(8):  # the chain of causes, bounded
        if seen is None:
            break
        if isinstance(seen, ConnectionError | httpx.ConnectError):
            return True
        seen = seen.__cause__ or seen.__context__
    return any(sign in str(error) for sign in ("Connection refused", "Name or service not known"))


def unavailable(model: str) -> ModelError:
    """A run whose model the deployment no longer routes (its allow-list changed since)."""
    return ModelError(
        "invalid_prompt",
        f"The model `{model}` is not available on this deployment; give the assistant or the run another model.",
    )


# A worker waits through the model's time to first token; one per concurrent turn (one per Lambda).
_PREFETCH = ThreadPoolExecutor(max_workers=64, thread_name_prefix="model-prefetch")


class Prefetch:
    """A model call started early: its first chunk is awaited in a worker thread."""

    def __init__(self, request: ModelRequest, prompt_tokens: int) -> None:
        self.request, self.prompt_tokens = request, prompt_tokens
        self.iterator = stream_completion(request)
        self.future = _PREFETCH.submit(next, self.iterator, None)

    def chunks(self) -> Iterator[Chunk]:
        first = self.future.result()  # re-raises the call's ModelError
        if first is None:
            return
        yield first
        yield from self.iterator

    def abandon(self) -> None:
        self.future.add_done_callback(lambda _: self.iterator.close())
