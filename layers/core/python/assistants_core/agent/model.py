"""Calling a model through litellm, reduced to the few things a turn needs.

``stream_completion`` yields plain chunks (text, tool-call fragments, finish, usage) and
raises :class:`ModelError` with the run's ``last_error`` code for any provider failure.
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

from ..config import settings
from ..model_routing import route

logger = Logger()
_credentials_loaded = False
_credentials_lock = threading.Lock()
# Variables whose values are credentials: those loaded below, and any named like one.
_credential_names: set[str] = set()
_loaded_credentials: dict[str, str] = {}  # what load_provider_credentials put in the environment
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

    def arguments(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "timeout": settings().model_timeout_seconds,  # the first byte, then each gap between chunks
            "num_retries": settings().model_retries,
            "drop_params": True,  # a provider that lacks a setting ignores it instead of failing
        }
        if self.tools:
            kwargs["tools"] = self.tools
            if self.tool_choice is not None:
                kwargs["tool_choice"] = self.tool_choice
            if self.parallel_tool_calls is not None:
                kwargs["parallel_tool_calls"] = self.parallel_tool_calls
        for name in ("temperature", "top_p", "max_tokens", "reasoning_effort"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        if self.response_format not in (None, "auto"):
            kwargs["response_format"] = self.response_format
        return kwargs


def load_provider_credentials(force: bool = False) -> None:
    """Put provider API keys from SSM (and an optional secret) into the environment, once.

    Each parameter under ``MODEL_CREDENTIALS_PATH`` becomes a variable of its name
    (``.../OPENAI_API_KEY``); ``MODEL_CREDENTIALS_SECRET`` may name a Secrets Manager secret
    holding a JSON object of variables. Variables already set win, so a local environment
    (or Bedrock through the IAM role) needs nothing here. ``force`` reads them again, past
    Powertools' cache, and replaces the values loaded before (a key rotated since: SnapStart's
    after-restore hook, assistants_core/snapstart.py).
    """
    global _credentials_loaded
    with _credentials_lock:
        if _credentials_loaded and not force:
            return
        if force:  # ours to replace; the environment's own variables still win
            for name in _loaded_credentials:
                if os.environ.get(name) == _loaded_credentials[name]:
                    del os.environ[name]
        _credentials_loaded = True
        from aws_lambda_powertools.utilities import parameters

        path = os.environ.get("MODEL_CREDENTIALS_PATH")
        if path:
            try:
                values = parameters.get_parameters(path, decrypt=True, max_age=300, force_fetch=force)
                for name, value in values.items():
                    _credential_names.add(name.rsplit("/", 1)[-1])
                    _set_credential(name.rsplit("/", 1)[-1], str(value))
            except Exception as error:  # no parameters, or no permission: providers may not need any
                logger.warning("provider credentials not loaded from SSM", extra={"path": path, "error": str(error)})
        secret = os.environ.get("MODEL_CREDENTIALS_SECRET")
        if secret:
            try:
                secret_value = parameters.get_secret(secret, max_age=300, force_fetch=force)
                for name, value in json.loads(str(secret_value)).items():
                    _credential_names.add(name)
                    _set_credential(name, str(value))
            except Exception as error:
                logger.warning("provider credentials not loaded from Secrets Manager", extra={"error": str(error)})


def _set_credential(name: str, value: str) -> None:
    """Set ``name`` unless the environment already has it; remember what was set here."""
    if name not in os.environ:
        os.environ[name] = value
        _loaded_credentials[name] = value


def redact_credentials(message: str) -> str:
    """``message`` with the value of every provider credential replaced by ``***``.

    A provider's error may quote the key it was sent (and litellm's message quotes the
    provider's); the message becomes a run's ``last_error``, an event and a log line.
    """
    for name, value in os.environ.items():
        if len(value) >= 12 and value in message and (name in _credential_names or _CREDENTIAL_NAME.search(name)):
            message = message.replace(value, "***")
    return message


# What litellm imports lazily on its first streamed completion (measured with 1.106.0): about
# two seconds that would otherwise land on the first user's time to first token.
_FIRST_CALL_MODULES = (
    "openai",
    "openai.types.chat",
    "openai.resources.chat",
    "litellm.proxy._types",
    "litellm.proxy._experimental.mcp_server.stdio_gate",
    "litellm.llms.openai.chat.gpt_audio_transformation",
    "litellm.llms.openai_like.dynamic_config",
    "litellm.llms.litellm_proxy.chat.transformation",
)


def warm_up() -> None:
    """Do at cold start what the first model call would: import litellm and its call path."""
    import importlib

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = importlib.import_module("litellm")
    # litellm prices every response, which loads its tokenizer on the first call (~0.8 s).
    litellm.token_counter(model="gpt-4o", messages=[{"role": "user", "content": "warm up"}])
    for name in _FIRST_CALL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a litellm upgrade moved it: only the first call gets slower
            logger.debug("warm-up import skipped", extra={"python_module": name})  # "module" is a LogRecord field


def stream_completion(request: ModelRequest) -> Generator[Chunk, None, None]:
    if route(request.model) is None:
        raise unavailable(request.model)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    load_provider_credentials()
    import litellm

    litellm.disable_streaming_logging = True  # no callbacks configured: skip the logging thread
    try:
        response = litellm.completion(**request.arguments())
        for chunk in response:
            yield from _chunks(chunk)
    except ModelError:
        raise
    except Exception as error:
        raise classify(error, request.model) from error


def _chunks(chunk: Any) -> Iterator[Chunk]:
    usage = getattr(chunk, "usage", None)
    if usage is not None and (getattr(usage, "prompt_tokens", None) or getattr(usage, "completion_tokens", None)):
        yield TokenUsage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))
    for choice in getattr(chunk, "choices", None) or []:
        delta = getattr(choice, "delta", None)
        if delta is not None:
            content = getattr(delta, "content", None)
            if content:
                yield TextDelta(content)
            for call in getattr(delta, "tool_calls", None) or []:
                function = getattr(call, "function", None)
                yield ToolCallDelta(
                    index=int(getattr(call, "index", 0) or 0),
                    id=getattr(call, "id", None),
                    name=getattr(function, "name", None) if function else None,
                    arguments=(getattr(function, "arguments", None) or "") if function else "",
                )
        reason = getattr(choice, "finish_reason", None)
        if reason:
            yield Finish(str(reason))


def classify(error: Exception, model: str = "") -> ModelError:
    """Map a provider failure to the run's ``last_error``: OpenAI's code and one sentence a user
    can act on. litellm's own message (multi-line, naming the library and its classes) goes to
    the log only."""
    code, sentence = "server_error", "The model call failed unexpectedly; try the run again."
    if _unreachable(error):  # litellm reports some refused connections as 500s
        sentence = _UNREACHABLE
    else:
        for kind, kind_code, kind_sentence in _kinds():
            if isinstance(error, kind):
                code, sentence = kind_code, kind_sentence
                break
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


def _kinds() -> tuple[tuple[type[BaseException], str, str], ...]:
    import litellm

    return (
        (litellm.ContextWindowExceededError, "invalid_prompt", _CONTEXT),
        (
            litellm.ContentPolicyViolationError,
            "invalid_prompt",
            "The model provider refused the prompt under its content policy.",
        ),
        (
            litellm.PaymentRequiredError,
            "server_error",
            "The model provider refused the call: the deployment's account has no credit left.",
        ),
        (
            litellm.BadRequestError,
            "invalid_prompt",
            "The model provider rejected the request as invalid (check the model, tools and settings of the run).",
        ),
        (
            litellm.UnprocessableEntityError,
            "invalid_prompt",
            "The model provider rejected the request as invalid (check the model, tools and settings of the run).",
        ),
        (
            litellm.RateLimitError,
            "rate_limit_exceeded",
            "The model provider's rate limit was reached; try the run again later.",
        ),
        (
            litellm.AuthenticationError,
            "server_error",
            "The model provider rejected the deployment's credentials for {model}.",
        ),
        (litellm.PermissionDeniedError, "server_error", "The model provider denied the deployment access to {model}."),
        (litellm.NotFoundError, "invalid_prompt", "The model provider does not know the model {model}."),
        (litellm.Timeout, "server_error", "The model provider did not answer in time; try the run again."),
        (litellm.APIConnectionError, "server_error", _UNREACHABLE),
        (litellm.InternalServerError, "server_error", _PROVIDER_DOWN),
        (litellm.ServiceUnavailableError, "server_error", _PROVIDER_DOWN),
        (litellm.BadGatewayError, "server_error", _PROVIDER_DOWN),
    )


_CONTEXT = (
    "The conversation is longer than the model's context window; "
    "set a truncation_strategy or max_prompt_tokens, or start a new thread."
)
_UNREACHABLE = "The model provider could not be reached; try the run again."
_PROVIDER_DOWN = "The model provider had an error while processing the run; try the run again."


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
