"""The embedders behind assistants_core.embeddings: the litellm adapter (against the fake model's
/v1/embeddings, as any OpenAI-compatible server) and the offline USE model the local stack uses."""

from __future__ import annotations

import math

import pytest

from assistants_core.embeddings import EmbeddingError, embedder_for
from assistants_core.embeddings.litellm_embedder import LiteLLMEmbedder
from assistants_core.embeddings.usem3_embedder import USEEmbedder
from tests.harness.fake_llm import FakeLLM


@pytest.fixture
def openai_env(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "fake-key")
    monkeypatch.delenv("MODEL_CREDENTIALS_PATH", raising=False)
    return fake_llm


def test_litellm_embedder_keeps_order_and_dimensions(openai_env: FakeLLM) -> None:
    embedder = LiteLLMEmbedder("openai/text-embedding-3-small", 16)
    texts = ["alpha", "beta", "gamma", "alpha"]
    vectors = embedder.embed_documents(texts)
    assert len(vectors) == 4 and all(len(v) == 16 for v in vectors)
    assert vectors[0] == vectors[3] and vectors[0] != vectors[1]  # the same text, the same vector
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vectors)
    assert embedder.embed_query("beta") == vectors[1]
    (request,) = [r for r in openai_env.requests("text-embedding-3-small") if r["input"] == texts]
    assert request["dimensions"] == 16  # the deployment's dimensions reach the provider


def test_litellm_embedder_failures_are_embedding_errors(openai_env: FakeLLM) -> None:
    with pytest.raises(EmbeddingError, match="openai/embed-broken"):
        LiteLLMEmbedder("openai/embed-broken", 8).embed_documents(["x"])
    # A provider that ignores the dimensions asked for: refused rather than written to the index.
    with pytest.raises(EmbeddingError, match="expected 32"):
        LiteLLMEmbedder("openai/text-embedding-3-small-ignores-dimensions", 32).embed_documents(["x"])


def test_offline_embedder_is_semantic_and_deterministic() -> None:
    embedder = embedder_for("usem3/multilingual-v3", 512)
    assert isinstance(embedder, USEEmbedder)
    france, paris, bananas = embedder.embed_documents(
        ["The capital of France is Paris.", "Paris is the capital city of France", "Bananas are yellow"]
    )
    assert len(france) == 512
    assert math.isclose(math.fsum(x * x for x in france), 1.0, rel_tol=1e-4)

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(france, paris) > 0.8 > cosine(france, bananas)
    # The same text, the same vector (up to float rounding: a batch is computed together).
    again = embedder.embed_query("The capital of France is Paris.")
    assert all(math.isclose(a, b, abs_tol=1e-5) for a, b in zip(again, france, strict=True))


def test_a_model_with_fixed_dimensions_refuses_others() -> None:
    with pytest.raises(ValueError, match="512"):
        embedder_for("usem3/multilingual-v3", 1024)
