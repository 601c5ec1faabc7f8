"""Model adapters: how a turn's :class:`~..model.ModelRequest` reaches a provider.

Two adapters share one interface (:class:`Adapter`): ``openai_chat`` sends the request over
httpx to an OpenAI-compatible server reached by an api base (vLLM, Ollama's ``/v1``, a LiteLLM
proxy, the local fake model), where litellm itself would send it unchanged; litellm
(``litellm_chat``) takes everything else (Bedrock, Anthropic, Gemini, OpenAI's own models with
their parameter mapping, ...). The reason is the cold start and the CPU of a turn: ``import
litellm`` costs seconds, and its per-chunk objects most of a turn's CPU (README, Benchmark >
Cold start). Both yield the same chunks and map failures to the same ``last_error`` codes and
sentences (``tests/test_model_adapters.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..model import Chunk, ModelRequest

# What a failure means to a run: its ``last_error`` code and the sentence a user reads.
CONTEXT = (
    "The conversation is longer than the model's context window; "
    "set a truncation_strategy or max_prompt_tokens, or start a new thread."
)
UNREACHABLE = "The model provider could not be reached; try the run again."
PROVIDER_DOWN = "The model provider had an error while processing the run; try the run again."
POLICY = "The model provider refused the prompt under its content policy."
NO_CREDIT = "The model provider refused the call: the deployment's account has no credit left."
INVALID = "The model provider rejected the request as invalid (check the model, tools and settings of the run)."
RATE_LIMITED = "The model provider's rate limit was reached; try the run again later."
BAD_CREDENTIALS = "The model provider rejected the deployment's credentials for {model}."
DENIED = "The model provider denied the deployment access to {model}."
UNKNOWN_MODEL = "The model provider does not know the model {model}."
TIMED_OUT = "The model provider did not answer in time; try the run again."

Kind = tuple[str, str]  # (last_error code, sentence)


class Adapter(Protocol):
    """One way of calling models (a module: ``openai_chat``, ``litellm_chat``)."""

    def stream(self, request: ModelRequest) -> Iterator[Chunk]:
        """The streamed answer as plain chunks; a provider failure raises as the library raised it."""
        ...

    def kind(self, error: BaseException) -> Kind | None:
        """What a failure this adapter raised means (None: nothing more specific than server_error)."""
        ...


def adapter_for(request: ModelRequest) -> Adapter:
    from . import litellm_chat, openai_chat

    return openai_chat if openai_chat.handles(request) else litellm_chat  # type: ignore[return-value]
