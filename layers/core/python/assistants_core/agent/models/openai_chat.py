"""The direct adapter: OpenAI's Chat Completions protocol over httpx, for ``openai/<name>``
models on an OpenAI-compatible server reached by an api base, where litellm would send the
request unchanged.

Why httpx and not the ``openai`` SDK: measured on this machine (``python -X importtime``), the
SDK's import and its first call (which loads every resource module and the chat types) cost
about 1.9 s of a cold start, most of the 3 s budget; httpx (which the SDK is built on) about
0.3 s, and the wire protocol is one JSON POST answered by server-sent events (``data: {chunk}`` lines,
``data: [DONE]``), which :func:`_events` reads. Chunks are parsed as JSON, not into objects.

What litellm 1.106 does on that route (``OpenAIUnknownModelConfig``, ``OpenAIGPTConfig``
``transform_request``, ``exception_mapping_utils``, ``CustomStreamWrapper``) and how this module
keeps it:

- the request: the model name without ``openai/``, the messages and settings as given
  (``reasoning_effort`` forwarded for a name not in OpenAI's catalogue), the timeout (connect,
  then the first byte and each gap between chunks) and ``MODEL_RETRIES`` retries, the base URL
  from ``OPENAI_BASE_URL`` (or ``OPENAI_API_BASE``) and the key from ``OPENAI_API_KEY``.
  :func:`handles` leaves to litellm what it would change: OpenAI's own models and reasoning
  families (parameter mapping: ``max_completion_tokens``, dropped temperatures), api.openai.com
  itself (tool schemas flattened), tool schemas with a ``pattern`` (litellm drops those Python
  cannot compile), and message parts it rewrites (images or non-text content in tool messages,
  ``image_url`` given as a string or with a ``format``, ``file`` parts);
- failures: :func:`kind` follows litellm's mapping for the openai provider (its message checks
  first, then the HTTP status; mid-stream, its stream wrapper's), so a run's ``last_error``
  reads the same on either route (``tests/test_model_adapters.py`` runs each case both ways).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx

from ...config import settings
from ...model_routing import known_model_provider
from . import (
    BAD_CREDENTIALS,
    CONTEXT,
    INVALID,
    POLICY,
    PROVIDER_DOWN,
    RATE_LIMITED,
    TIMED_OUT,
    UNKNOWN_MODEL,
    UNREACHABLE,
    Kind,
)

if TYPE_CHECKING:
    from ..model import Chunk, ModelRequest

PREFIX = "openai/"
_REASONING_MARKERS = ("gpt-5", "gpt-6")  # litellm's GPT_REASONING_SERIES_MARKERS: parameters mapped
_RETRYABLE = frozenset({408, 409, 429})  # and 5xx: as the openai SDK (litellm's client) retries
MAX_RETRY_AFTER_S = 120.0  # the openai SDK's MAX_RETRY_AFTER_DELAY
_clients: dict[float, httpx.Client] = {}
_clients_lock = threading.Lock()


class ProviderError(Exception):
    """The provider answered an error: an HTTP status, or an error event in a streamed answer."""

    def __init__(self, status_code: int, body: Any, text: str) -> None:
        super().__init__(f"Error code: {status_code} - {text}")  # the openai SDK's wording
        self.status_code, self.body = status_code, body


class MissingKey(Exception):
    """No ``OPENAI_API_KEY``: the openai SDK refuses to build a client (and so litellm to call),
    before any request."""


class MidStreamError(Exception):
    """A failure once the answer had begun streaming (a broken or stalled stream, an error event)."""


def api_base() -> str | None:
    """Where litellm sends ``openai/`` models (``litellm.api_base`` is never set here)."""
    return os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None


def handles(request: ModelRequest) -> bool:
    """Whether litellm would send this request unchanged to an OpenAI-compatible server."""
    if os.environ.get("MODEL_ADAPTER", "auto") == "litellm" or not request.model.startswith(PREFIX):
        return False
    name, base = request.model[len(PREFIX) :], api_base()
    if not name or base is None or _is_openai_host(base):
        return False
    if known_model_provider(name) is not None or any(marker in request.model for marker in _REASONING_MARKERS):
        return False  # OpenAI's catalogue (o-series included) and reasoning families: litellm maps them
    if request.tools and '"pattern"' in json.dumps(request.tools):
        return False
    return all(_unchanged(message) for message in request.messages)


def _is_openai_host(base: str) -> bool:
    host = urlparse(base).hostname
    return host is None or host == "openai.com" or host.endswith(".openai.com")


def _unchanged(message: dict[str, Any]) -> bool:
    """Whether litellm's message transforms leave ``message`` as it is."""
    content = message.get("content")
    if not isinstance(content, list):
        return True
    if message.get("role") == "tool":
        return False  # images are hoisted out of tool messages, tool references dropped
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            continue
        if kind == "image_url" and isinstance(part.get("image_url"), dict) and "format" not in part["image_url"]:
            continue
        return False
    return True


def _client() -> httpx.Client:
    """One client per process and timeout: its connections are kept between turns."""
    timeout = settings().model_timeout_seconds
    with _clients_lock:
        client = _clients.get(timeout)
        if client is None:
            client = _clients[timeout] = httpx.Client(timeout=timeout)  # connect, write, each read
        return client


def close_clients() -> None:
    """Close the kept connections (a SnapStart snapshot must not hold them: assistants_core.snapstart)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def stream(request: ModelRequest) -> Iterator[Chunk]:
    from ..model import chunks_of

    body = request.body()
    body["model"] = request.model[len(PREFIX) :]
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    key = os.environ.get("OPENAI_API_KEY")
    if not key:  # litellm's client refuses to start without one, even for a server that needs none
        raise MissingKey("Missing credentials: set the OPENAI_API_KEY environment variable.")
    headers["Authorization"] = f"Bearer {key}"
    url = f"{(api_base() or '').rstrip('/')}/chat/completions"
    content = json.dumps(body, separators=(",", ":")).encode()
    response = _send(url, headers, content)
    try:
        try:
            for event in _events(response):
                yield from chunks_of(event)
        except Exception as error:
            raise MidStreamError(str(error)) from error
    finally:
        response.close()


def _send(url: str, headers: dict[str, str], content: bytes) -> httpx.Response:
    """The streamed response once its status is a success, after ``MODEL_RETRIES`` retries of
    what the openai SDK retries (connection failures, :func:`should_retry`), waiting as it waits."""
    retries = settings().model_retries
    client = _client()
    response: httpx.Response | None = None
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            response = client.send(client.build_request("POST", url, headers=headers, content=content), stream=True)
        except httpx.TransportError:
            if last:
                raise
        else:
            if response.is_success:
                return response
            text = response.read().decode(errors="replace")
            response.close()
            if last or not should_retry(response.status_code, response.headers):
                try:
                    parsed: Any = json.loads(text)
                except ValueError:
                    parsed = text
                body = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
                raise ProviderError(response.status_code, body, text)
        time.sleep(retry_delay(attempt, None if response is None else response.headers))
        response = None
    raise AssertionError("unreachable")  # the last attempt returned or raised


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asks for: ``retry-after-ms``, else ``retry-after`` in seconds or as an
    HTTP date (the openai SDK's ``_parse_retry_after_header``)."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None


def should_retry(status_code: int, headers: Mapping[str, str]) -> bool:
    """Whether the openai SDK (litellm's client) retries this answer: ``x-should-retry`` first,
    never past a ``retry-after`` of 2 minutes, else 408, 409, 429 and 5xx."""
    wanted = retry_after(headers)
    if wanted is not None and math.isfinite(wanted) and wanted > MAX_RETRY_AFTER_S:
        return False
    flag = headers.get("x-should-retry")
    if flag in ("true", "false"):
        return flag == "true"
    return status_code in _RETRYABLE or status_code >= 500


def retry_delay(attempt: int, headers: Mapping[str, str] | None) -> float:
    """Seconds before retry ``attempt + 1``, as the openai SDK waits: what the server asked for,
    up to 2 minutes, else 0.5 s doubled per retry up to 8 s, less up to a quarter of jitter."""
    wanted = retry_after(headers) if headers is not None else None
    if wanted is not None and math.isfinite(wanted) and 0 < wanted <= MAX_RETRY_AFTER_S:
        return wanted
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON chunks of a server-sent event stream, up to ``[DONE]``; an error event raises."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments (": keep-alive"), event: and id: fields
        data = line[5:].strip()
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        error = chunk.get("error") if isinstance(chunk, dict) else None
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 500  # as litellm reads it
            message = error.get("message") if isinstance(error, dict) else None
            raise ProviderError(status, error, message if isinstance(message, str) else json.dumps(error))
        yield chunk


_CONTEXT_SIGNS = (
    "exceed context limit",
    "this model's maximum context length is",
    "string too long. expected a string with maximum length",
    "model's maximum context limit",
    "is longer than the model's context length",
    "input tokens exceed the configured limit",
    "`inputs` tokens + `max_new_tokens` must be",
    "exceeds the available context size",
    "exceeds the maximum number of tokens allowed",
)
_BY_STATUS: dict[int, Kind] = {
    400: ("invalid_prompt", INVALID),
    401: ("server_error", BAD_CREDENTIALS),
    404: ("invalid_prompt", UNKNOWN_MODEL),
    408: ("server_error", TIMED_OUT),
    422: ("invalid_prompt", INVALID),
    429: ("rate_limit_exceeded", RATE_LIMITED),
    500: ("server_error", PROVIDER_DOWN),
    502: ("server_error", PROVIDER_DOWN),
    503: ("server_error", PROVIDER_DOWN),
    504: ("server_error", TIMED_OUT),
}


def kind(error: BaseException) -> Kind | None:
    """litellm's mapping of an openai-provider failure (``exception_mapping_utils``), to our kinds.

    Mid-stream, litellm's stream wrapper raises a client error (4xx but 429) as mapped and wraps
    anything else (429, 5xx, a broken or stalled connection) in ``MidStreamFallbackError``, a
    ``ServiceUnavailableError``: the provider "had an error".
    """
    if isinstance(error, MidStreamError):
        cause = error.__cause__
        if isinstance(cause, ProviderError) and 400 <= cause.status_code < 500 and cause.status_code != 429:
            return _mapped(cause)[1]
        return "server_error", PROVIDER_DOWN
    if isinstance(error, MissingKey):  # litellm maps the SDK's refusal to an InternalServerError
        return "server_error", PROVIDER_DOWN
    return _mapped(error)[1]


def _mapped(error: BaseException) -> tuple[int | None, Kind | None]:
    """The HTTP status litellm would see on ``error``, and the kind its mapping gives."""
    if isinstance(error, httpx.TimeoutException):
        return 408, ("server_error", TIMED_OUT)  # before the answer began: the SDK's APITimeoutError
    if isinstance(error, httpx.TransportError):
        return None, ("server_error", UNREACHABLE)  # the SDK's APIConnectionError
    status = error.status_code if isinstance(error, ProviderError) else None
    text = str(error)
    lower = text.lower()
    if (re.search(r"\b429\b", text) and status in (None, 429)) or re.search(r"rate[\s_\-]*limit", lower):
        return status, ("rate_limit_exceeded", RATE_LIMITED)
    if "string_above_max_length" not in lower and any(sign in lower for sign in _CONTEXT_SIGNS):
        return status, ("invalid_prompt", CONTEXT)
    if "invalid_request_error" in text and "model_not_found" in text:
        return status, ("invalid_prompt", UNKNOWN_MODEL)
    if (
        ("invalid_request_error" in text and "content_policy_violation" in text)
        or ("Invalid prompt" in text and "violating our usage policy" in text)
        or "request was rejected as a result of the safety system" in lower
    ):
        return status, ("invalid_prompt", POLICY)
    if "invalid_request_error" in text and "Incorrect API key provided" not in text:
        return status, ("invalid_prompt", INVALID)
    if "The server had an error processing your request." in text:
        return status, ("server_error", PROVIDER_DOWN)
    if "Request too large" in text:
        return status, ("rate_limit_exceeded", RATE_LIMITED)
    if "The api_key client option must be set" in text:  # an older SDK's wording of MissingKey
        return status, ("server_error", BAD_CREDENTIALS)
    if isinstance(status, int):
        return status, _BY_STATUS.get(status)  # another status: litellm's generic APIError
    return None, ("server_error", UNREACHABLE)  # no status: litellm's APIConnectionError
