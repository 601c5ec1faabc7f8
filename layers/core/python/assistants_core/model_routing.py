"""Which model strings this deployment can route, known without importing litellm.

litellm takes seconds to import, so the API functions judge a model by data generated from
the installed litellm (``model_routing.json``: provider prefixes, bare names and litellm's
routing rules for new bare names; ``python -m tests.harness.litellm_routes`` regenerates it and
``tests/test_model_routing.py`` fails when it drifts). On top of that, the deployment's
allow-list (``ALLOWED_MODELS``, shell-style patterns) narrows what tenants may use.
"""

from __future__ import annotations

import json
import os
import re
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_PATH = Path(__file__).with_name("model_routing.json")
MAX_MODEL_LENGTH = 256
_REPLICATE_VERSION_LENGTH = 64  # "owner/name:<64 hex digits>" is a Replicate version


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    data = json.loads(DATA_PATH.read_text())
    data["providers"] = frozenset(data["providers"])
    data["excluded_providers"] = frozenset(data["excluded_providers"])
    data["routing_rules"] = [(re.compile(p, re.IGNORECASE), provider) for p, provider in data["routing_rules"]]
    return data


def provider_for(model: str) -> str | None:
    """The provider litellm would route ``model`` to, or None when it cannot route it.

    Follows litellm's ``get_llm_provider`` in its order: a known provider prefix, a known
    bare name, its few hard-coded name shapes, then its regex rules for new names.
    """
    if not model or len(model) > MAX_MODEL_LENGTH or any(c.isspace() or not c.isprintable() for c in model):
        return None
    data = _data()
    prefix, slash, rest = model.partition("/")
    if slash and prefix in data["excluded_providers"]:
        return None
    if slash and prefix in data["providers"]:
        return prefix if rest else None
    known: str | None = data["models"].get(model)
    if known is not None:
        return known
    if "ft:gpt-3.5-turbo" in model or "ft:gpt-4" in model or model.startswith("gpt-image"):
        return "openai"
    parts = model.split(":")
    if len(model) > _REPLICATE_VERSION_LENGTH and len(parts) > 1 and len(parts[1]) == _REPLICATE_VERSION_LENGTH:
        return "replicate"
    if model.startswith("amazon_nova"):
        return "amazon_nova"
    for pattern, provider in data["routing_rules"]:
        if pattern.search(model):
            return str(provider)
    return None


def allowed_patterns() -> tuple[str, ...]:
    """``ALLOWED_MODELS``: comma-separated names or patterns (``bedrock/*``); ``*`` (the
    default) lets through every model litellm can route."""
    raw = os.environ.get("ALLOWED_MODELS", "*")
    return tuple(part.strip() for part in raw.split(",") if part.strip()) or ("*",)


def is_allowed(model: str, patterns: tuple[str, ...] | None = None) -> bool:
    return any(fnmatchcase(model, pattern) for pattern in patterns or allowed_patterns())


def route(model: str) -> str | None:
    """The provider of a model this deployment can use: routable by litellm and allowed."""
    provider = provider_for(model)
    return provider if provider is not None and is_allowed(model) else None


def listed_models() -> list[str]:
    """The allow-list's concrete names (no wildcard) that litellm can route."""
    return [p for p in allowed_patterns() if not any(c in p for c in "*?[") and provider_for(p) is not None]


def known_model_provider(name: str) -> str | None:
    """The provider of a bare name in litellm's model map (``gpt-4o`` -> ``openai``), else None."""
    known: str | None = _data()["models"].get(name)
    return known
