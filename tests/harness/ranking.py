"""Rankings computed by hand, from the formulas AWS names, to check S3 Vectors' answers against:
cosine similarity (numpy, in float64) and BM25 as Lucene scores it."""

from __future__ import annotations

import math
import re

import numpy as np


def cosine_similarity(data: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The cosine similarity of each row of ``data`` to ``query`` (1 - S3 Vectors' cosine distance)."""
    data64, query64 = data.astype(np.float64), query.astype(np.float64)
    return (data64 @ query64) / (np.linalg.norm(data64, axis=1) * np.linalg.norm(query64))


def lucene_bm25(corpus: dict[str, str], query: str, k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """BM25 as Lucene scores it (what AWS names), over lower-cased word tokens (a standard-analyzed
    corpus); matches only."""
    docs = {k: re.findall(r"\w+", v.lower()) for k, v in corpus.items()}
    average = sum(len(d) for d in docs.values()) / len(docs)
    scores = dict.fromkeys(docs, 0.0)
    for term in re.findall(r"\w+", query.lower()):
        df = sum(term in d for d in docs.values())
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for key, doc in docs.items():
            tf = doc.count(term)
            scores[key] += idf * tf / (tf + k1 * (1 - b + b * len(doc) / average))
    return {k: s for k, s in scores.items() if s > 0}
