"""The litellm adapter: every model the direct route does not take (Bedrock, Anthropic, Gemini,
OpenAI's own models, ...), with litellm's per-provider request mapping."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from ...config import settings
from . import (
    BAD_CREDENTIALS,
    CONTEXT,
    DENIED,
    INVALID,
    NO_CREDIT,
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

logger = Logger()

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


def _litellm() -> Any:
    """litellm, imported and set up once: no per-chunk work that does not serve the run."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    if not getattr(litellm, "_assistants_configured", False):
        litellm.disable_streaming_logging = True  # no callbacks configured: skip the logging thread
        litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on each error
        litellm.turn_off_message_logging = True  # the prompt never goes to a logging payload
        litellm._assistants_configured = True
    return litellm


def warm_up() -> None:
    """Do at cold start what the first litellm call would: import litellm and its call path."""
    litellm = _litellm()
    # litellm prices every response, which loads its tokenizer on the first call (~0.8 s).
    litellm.token_counter(model="gpt-4o", messages=[{"role": "user", "content": "warm up"}])
    for name in _FIRST_CALL_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # a litellm upgrade moved it: only the first call gets slower
            logger.debug("warm-up import skipped", extra={"python_module": name})  # "module" is a LogRecord field


def stream(request: ModelRequest) -> Iterator[Chunk]:
    from ..model import chunks_of

    litellm = _litellm()
    response = litellm.completion(
        **request.body(),
        timeout=settings().model_timeout_seconds,  # the first byte, then each gap between chunks
        num_retries=settings().model_retries,
        drop_params=True,  # a provider that lacks a setting ignores it instead of failing
    )
    for chunk in response:
        yield from chunks_of(chunk)


def kind(error: BaseException) -> Kind | None:
    if "litellm" not in sys.modules:
        return None  # litellm never ran: the failure is not one of its exceptions
    for error_type, found in _kinds():
        if isinstance(error, error_type):
            return found
    return None


def _kinds() -> tuple[tuple[type[BaseException], Kind], ...]:
    import litellm

    return (
        (litellm.ContextWindowExceededError, ("invalid_prompt", CONTEXT)),
        (litellm.ContentPolicyViolationError, ("invalid_prompt", POLICY)),
        (litellm.PaymentRequiredError, ("server_error", NO_CREDIT)),
        (litellm.BadRequestError, ("invalid_prompt", INVALID)),
        (litellm.UnprocessableEntityError, ("invalid_prompt", INVALID)),
        (litellm.RateLimitError, ("rate_limit_exceeded", RATE_LIMITED)),
        (litellm.AuthenticationError, ("server_error", BAD_CREDENTIALS)),
        (litellm.PermissionDeniedError, ("server_error", DENIED)),
        (litellm.NotFoundError, ("invalid_prompt", UNKNOWN_MODEL)),
        (litellm.Timeout, ("server_error", TIMED_OUT)),
        (litellm.APIConnectionError, ("server_error", UNREACHABLE)),
        (litellm.InternalServerError, ("server_error", PROVIDER_DOWN)),
        (litellm.ServiceUnavailableError, ("server_error", PROVIDER_DOWN)),
        (litellm.BadGatewayError, ("server_error", PROVIDER_DOWN)),
    )
