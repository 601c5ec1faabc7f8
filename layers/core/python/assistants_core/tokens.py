"""tiktoken encodings that load offline, shared by prompt counting and file chunking.

tiktoken downloads an encoding's BPE file on first use; a Lambda has no network for that (and
should not wait on it). litellm's wheel ships the files for ``o200k_base``, ``cl100k_base`` and
``p50k_base`` in ``litellm/litellm_core_utils/tokenizers``, named as tiktoken's cache names
them, so pointing ``TIKTOKEN_CACHE_DIR`` there makes them load from disk. Other encodings
(``r50k_base``, ``gpt2``) are not shipped, so models that would use them fall back to
``cl100k_base`` rather than download. The folder is found without importing litellm, whose
import is slow. tiktoken itself is imported lazily: only functions that count tokens pay for it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.util import find_spec
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiktoken import Encoding

# The encodings whose files litellm ships; anything else would be downloaded.
OFFLINE_ENCODINGS = frozenset({"o200k_base", "cl100k_base", "p50k_base", "p50k_edit"})
DEFAULT_ENCODING = "cl100k_base"
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")


def _point_tiktoken_at_bundled_files() -> None:
    """Set ``TIKTOKEN_CACHE_DIR`` to litellm's tokenizers folder unless it is already set."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    spec = find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "litellm_core_utils", "tokenizers")
    if os.path.isdir(folder):
        os.environ["TIKTOKEN_CACHE_DIR"] = folder


def encoding_name(name_or_model: str) -> str:
    """The offline encoding for an encoding name or a model (``provider/`` prefixes ignored)."""
    import tiktoken

    if name_or_model in OFFLINE_ENCODINGS:
        return name_or_model
    model = name_or_model.rsplit("/", 1)[-1]
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = "o200k_base" if model.startswith(_O200K_PREFIXES) else DEFAULT_ENCODING
    return name if name in OFFLINE_ENCODINGS else DEFAULT_ENCODING


@lru_cache(maxsize=8)
def encoding(name_or_model: str) -> Encoding:
    """The tiktoken encoding for an encoding name (``o200k_base``) or a model (``gpt-4o``)."""
    _point_tiktoken_at_bundled_files()
    import tiktoken

    return tiktoken.get_encoding(encoding_name(name_or_model))


def count(name_or_model: str, text: str) -> int:
    """Tokens in ``text``; special-token markers such as ``<|endoftext|>`` count as plain text."""
    return len(encoding(name_or_model).encode_ordinary(text))


def warm_up() -> None:
    """Load the common encodings at cold start rather than on the first request."""
    encoding("o200k_base")
    encoding("cl100k_base")
