"""Embeddings through litellm: any provider it knows (Bedrock through IAM, OpenAI, Cohere...).

litellm is imported on the first call, not at import: it costs seconds and hundreds of MB, and
only the functions that embed need it.
"""

from __future__ import annotations

import os
from typing import Any

from .base import EmbeddingError


class LiteLLMEmbedder:
    batch_size = 16

    def __init__(self, model: str, dimensions: int) -> None:
        self.model = model
        self.dimensions = dimensions
        # Cohere's models embed queries and documents differently and must be told which.
        self._cohere = "cohere" in model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, "search_document")

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text], "search_query")[0]

    def _embed(self, texts: list[str], input_type: str) -> list[list[float]]:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from ..agent.model import load_provider_credentials, redact_credentials

        load_provider_credentials()
        import litellm

        kwargs: dict[str, Any] = {"model": self.model, "input": texts, "dimensions": self.dimensions}
        if self._cohere:
            kwargs["input_type"] = input_type
        try:
            response = litellm.embedding(**kwargs, drop_params=True)
        except Exception as error:
            raise EmbeddingError(redact_credentials(f"the embedding model {self.model} failed: {error}")) from error
        vectors = [list(map(float, item["embedding"])) for item in sorted(response.data, key=lambda d: d["index"])]
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise EmbeddingError(
                f"the embedding model {self.model} returned {len(vectors)} vectors of "
                f"{len(vectors[0]) if vectors else 0} dimensions for {len(texts)} texts; expected {self.dimensions}"
            )
        return vectors
