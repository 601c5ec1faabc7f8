"""The direct adapter: OpenAI's Chat Completions protocol through the ``openai`` SDK, for
``openai/<name>`` models on an OpenAI-compatible server reached by an api base, where litellm
would send the request unchanged.

What litellm 1.106 does on that route (``OpenAIUnknownModelConfig``, ``OpenAIGPTConfig``
``transform_request``, ``exception_mapping_utils``) and how this module keeps it:

- the request: the model name without ``openai/``, the messages and settings as given
  (``reasoning_effort`` forwarded for a name not in OpenAI's catalogue), ``max_retries`` and the
  timeout on the SDK client, the base URL from ``OPENAI_BASE_URL`` (or ``OPENAI_API_BASE``) and
  the key from ``OPENAI_API_KEY``. :func:`handles` leaves to litellm what it would change:
  OpenAI's own models and reasoning families (parameter mapping: ``max_completion_tokens``,
  dropped temperatures), api.openai.com itself (tool schemas flattened), tool schemas with a
  ``pattern`` (litellm drops those Python cannot compile), and message parts it rewrites (images
  or non-text content in tool messages, ``image_url`` given as a string or with a ``format``,
  ``file`` parts);
- failures: :func:`kind` follows litellm's mapping for the openai provider (its message checks
  first, then the HTTP status), so a run's ``last_error`` reads the same on either route.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

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
    from openai import OpenAI

    from ..model import Chunk, ModelRequest

PREFIX = "openai/"
_REASONING_MARKERS = ("gpt-5", "gpt-6")  # litellm's GPT_REASONING_SERIES_MARKERS: parameters mapped
_clients: dict[tuple[str, str, float, int], OpenAI] = {}
_clients_lock = threading.Lock()


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


def _client() -> OpenAI:
    """One SDK client per process (its connection pool kept between turns)."""
    from openai import OpenAI

    config = settings()
    key = (api_base() or "", os.environ.get("OPENAI_API_KEY", ""), config.model_timeout_seconds, config.model_retries)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            # The timeout bounds the first byte, then each gap between chunks (httpx's read timeout).
            client = OpenAI(api_key=key[1] or None, base_url=key[0], timeout=key[2], max_retries=key[3])
            _clients[key] = client
        return client


def warm_up() -> None:
    """Import the SDK and the chat resource its first call would (the resource loads lazily)."""
    import openai.resources.chat  # noqa: F401


def stream(request: ModelRequest) -> Iterator[Chunk]:
    from ..model import chunks_of

    body = request.body()
    body["model"] = request.model[len(PREFIX) :]
    with _client().chat.completions.create(**body) as response:
        try:
            for chunk in response:
                yield from chunks_of(chunk)
        except Exception as error:
            raise MidStreamError(str(error)) from error


class MidStreamError(Exception):
    """A failure once the response had begun (a broken or stalled stream, an error event)."""


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
    if isinstance(error, MidStreamError) and error.__cause__ is not None:
        status, found = _mapped(error.__cause__)
        client_error = isinstance(status, int) and 400 <= status < 500 and status != 429
        return found if client_error else ("server_error", PROVIDER_DOWN)
    return _mapped(error)[1]


def _mapped(error: BaseException) -> tuple[int | None, Kind | None]:
    """The HTTP status litellm would see on ``error``, and the kind its mapping gives."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return 408, ("server_error", TIMED_OUT)
    status = getattr(error, "status_code", None)
    body = getattr(error, "body", None)
    if status is None and isinstance(error, openai.APIError) and isinstance(body, dict):
        code = body.get("code")  # an error event in a 200 stream: litellm takes its code as the status
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
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
    if "The api_key client option must be set" in text:
        return status, ("server_error", BAD_CREDENTIALS)
    if isinstance(status, int):
        return status, _BY_STATUS.get(status)  # another status: litellm's generic APIError
    return None, ("server_error", UNREACHABLE)  # no status: litellm's APIConnectionError
