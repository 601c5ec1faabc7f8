"""What an embedder is: texts in, unit-length vectors out, in batches it can take."""

from __future__ import annotations

from typing import Protocol


class Embedder(Protocol):
    model: str
    dimensions: int
    batch_size: int  # texts per call

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of chunks being indexed."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query (some models embed queries differently)."""
        ...


class EmbeddingError(Exception):
    """The embedding model could not be called: transient, so ingestion retries it."""
