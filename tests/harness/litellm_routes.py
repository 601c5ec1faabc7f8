"""Generate ``assistants_core/model_routing.json`` from the installed litellm.

The API functions must know which model strings litellm can route without importing litellm
(seconds of cold start), so what litellm's ``get_llm_provider`` knows is kept as data: the
provider prefixes it accepts (``openai/...``), the bare model names it maps to a provider
(``gpt-4o``) and its regex routing rules for new bare names. ``tests/test_model_routing.py``
regenerates it and fails when it no longer matches the installed litellm.

    python -m tests.harness.litellm_routes      # rewrites the file after a litellm upgrade
"""

from __future__ import annotations

import json
import os
from typing import Any

from assistants_core.model_routing import DATA_PATH

# Prefixes get_llm_provider checks with startswith() rather than through its provider list.
_EXTRA_PREFIXES = (
    "bytez",
    "gdc",
    "lemonade",
    "heroku",
    "cometapi",
    "oci",
    "compactifai",
    "ovhcloud",
    "clarifai",
    "sap",
)
PROBE = "probe-model"


def litellm_provider(model: str) -> str | None:
    """The provider litellm routes ``model`` to, or None when it cannot route it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.litellm_core_utils.get_llm_provider_logic import get_llm_provider

    litellm.suppress_debug_info = True
    try:
        return str(get_llm_provider(model=model)[1])
    except Exception:
        return None


def interactive_providers() -> frozenset[str]:
    """Providers whose routing starts an OAuth device flow: no use to a serverless deployment."""
    from litellm.constants import PROVIDERS_THAT_AUTHENTICATE_ON_PROVIDER_INFO

    return frozenset(PROVIDERS_THAT_AUTHENTICATE_ON_PROVIDER_INFO)


def generate() -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.litellm_core_utils import fallback_generalizations
    from litellm.llms.openai_like.json_loader import JSONProviderRegistry

    JSONProviderRegistry.load()
    excluded = interactive_providers()
    candidates = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    candidates |= set(JSONProviderRegistry._providers) | set(_EXTRA_PREFIXES)
    providers = sorted(p for p in candidates - excluded if litellm_provider(f"{p}/{PROBE}") is not None)
    prefixes = set(providers) | excluded
    models: dict[str, str] = {}
    for name in sorted(set(litellm.model_cost) | {str(m) for m in litellm.model_list}):
        if not name or name.partition("/")[0] in prefixes:
            continue
        provider = litellm_provider(name)
        if provider is not None:
            models[name] = provider
    rules = [[rule.pattern.pattern, rule.provider] for rule in fallback_generalizations._registry.routing_rules]
    return {
        "litellm_version": _litellm_version(),
        "providers": providers,
        "excluded_providers": sorted(excluded),
        "routing_rules": rules,
        "models": models,
    }


def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


def main() -> None:
    DATA_PATH.write_text(json.dumps(generate(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {DATA_PATH}")


if __name__ == "__main__":
    main()
