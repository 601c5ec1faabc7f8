"""QueryVectors for the S3 Vectors emulator: exact search, BM25, fusion and paging.

The QueryVectors documentation (botocore 1.44.5) is the authority: ``queryVector`` alone ranks
by distance, ``queryTexts`` alone by BM25 score, both by Reciprocal Rank Fusion; full-text and
hybrid need an ENHANCED index. Choices the documentation leaves open, made here:

- Search is exact (numpy), so results are the true nearest neighbours. Cosine distance is
  1 - cosine similarity, euclidean distance the L2 norm of the difference.
- ENHANCED applies the filter before the search. CLASSIC applies it during the search; here it
  filters the ``topK`` nearest vectors, the worst case AWS warns of (fewer than topK results).
- Full-text results are the vectors that match at least one term; with several ``queryTexts``
  their BM25 scores are summed.
- Hybrid: the vector search and each text search contribute their own top ``topK`` lists,
  fused with score = sum of 1 / (60 + rank), rank from 1 (Cormack et al., 2009).
- ``topK`` is the total number of results, up to 10,000; they come 100 a page, each page a
  slice of one snapshot taken by the first request, so writes between pages do not shift them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from moto.s3vectors.exceptions import ValidationError

from .s3vectors_filters import compile_filter
from .s3vectors_store import (
    CLASSIC,
    ENHANCED,
    INDEX_MODES,
    IndexState,
    Matrix,
    Record,
    enum_param,
    int_param,
    invalid,
    page_position,
    page_token,
    vector_array,
)
from .s3vectors_text import text_index

MAX_TOP_K = 10_000
PAGE_SIZE = 100
RRF_K = 60
MAX_QUERY_TEXTS = 10
MAX_QUERY_TEXT_CHARS = 1024
MAX_CACHED_FILTERS = 256
SESSION_SECONDS = 300  # "pagination tokens remain valid for several minutes"


@dataclass(frozen=True)
class Hit:
    """One ranked result, with everything a page may need to show."""

    key: str
    record: Record
    distance: float | None = None
    fused: float | None = None
    bm25: tuple[tuple[str, float], ...] = ()
    in_vector_leg: bool = False

    def to_json(self, *, metadata: bool, distance: bool, scores: bool, hybrid: bool, text: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key}
        if distance and self.distance is not None and (not hybrid or self.in_vector_leg):
            out["distance"] = self.distance
        if metadata:
            out["metadata"] = self.record.metadata
        if scores and (hybrid or text):
            block: dict[str, Any] = {}
            if hybrid:
                block["fused"] = self.fused
                if self.in_vector_leg:
                    block["vectorDistance"] = self.distance
            if self.bm25:
                block["bm25Scores"] = [{"metadataKey": k, "score": s} for k, s in self.bm25]
            out["scores"] = block
        return out


@dataclass
class _Session:
    fingerprint: str
    hits: list[Hit]
    expires: float


_sessions: dict[str, _Session] = {}
_sessions_lock = threading.Lock()


def query(state: IndexState, index_arn: str, params: dict[str, Any]) -> dict[str, Any]:
    """The QueryVectors response body for ``params`` (the request's JSON)."""
    top_k = int_param(params.get("topK"), "/topK", 1, MAX_TOP_K)
    texts = params.get("queryTexts") or []
    vector = params.get("queryVector")
    fingerprint = _fingerprint(index_arn, params)
    token = params.get("nextToken")
    if token:
        hits, offset = _resume(token, fingerprint)
    else:
        with state.lock:
            hits = _rank(state, top_k, vector, texts, params)
        offset = 0
    page = hits[offset : offset + PAGE_SIZE]
    shape = {
        "metadata": bool(params.get("returnMetadata")),
        "distance": bool(params.get("returnDistance")),
        "scores": bool(params.get("returnScores")),
        "hybrid": bool(vector is not None and texts),
        "text": bool(texts),
    }
    body: dict[str, Any] = {"vectors": [hit.to_json(**shape) for hit in page], "distanceMetric": state.metric}
    if offset + PAGE_SIZE < len(hits):
        body["nextToken"] = _session_token(fingerprint, hits, offset + PAGE_SIZE, token)
    return body


def _rank(state: IndexState, top_k: int, vector: Any, texts: list[Any], params: dict[str, Any]) -> list[Hit]:
    """All ``top_k`` results of a query, best first (the caller holds the index's lock)."""
    mode = enum_param(params.get("queryMode") or state.mode, "/queryMode", INDEX_MODES)
    if mode == CLASSIC and state.mode == ENHANCED:
        raise ValidationError("queryMode CLASSIC cannot be used with an index in ENHANCED mode")
    if vector is None and not texts:
        raise ValidationError("A query must include queryVector, queryTexts, or both")
    if texts and state.mode != ENHANCED:
        raise ValidationError("Full-text and hybrid search require a vector index in ENHANCED mode")
    _check_texts(state, texts)
    matrix = state.matrix()
    distances = None
    if vector is not None:
        values = vector.get("float32") if isinstance(vector, dict) else None
        if not isinstance(values, list):
            raise invalid("/queryVector", "Member must contain float32 vector data")
        query_array = vector_array(values, state.dimension, state.metric, "Invalid query vector")
        distances = _distances(matrix, query_array, state.metric)

    mask = np.ones(len(matrix.keys), dtype=bool)
    document = params.get("filter")
    if document is not None:
        matched = _filter_mask(state, document, mode == ENHANCED)
        if mode == CLASSIC and distances is not None:  # vector-only, as text needs ENHANCED
            order = _top(distances, mask, top_k, ascending=True)
            return _vector_hits(matrix, distances, order[matched[order]])
        mask = matched
    if distances is not None and not texts:
        return _vector_hits(matrix, distances, _top(distances, mask, top_k, ascending=True))
    legs = [(t["metadataKey"], text_index(state, t["metadataKey"]).scores(t["text"])) for t in texts]
    if distances is None:
        return _text_hits(matrix, legs, mask, top_k)
    return _hybrid_hits(matrix, distances, legs, mask, top_k)


def _vector_hits(matrix: Matrix, distances: np.ndarray, order: np.ndarray) -> list[Hit]:
    return [Hit(matrix.keys[r], matrix.records[r], distance=float(distances[r])) for r in order.tolist()]


def _text_hits(matrix: Matrix, legs: list[tuple[str, np.ndarray]], mask: np.ndarray, top_k: int) -> list[Hit]:
    """Vectors matching at least one term, by their BM25 scores summed over the queried keys."""
    total = np.sum([scores for _, scores in legs], axis=0)
    order = _top(total, mask & (total > 0), top_k, ascending=False)
    return [
        Hit(matrix.keys[r], matrix.records[r], bm25=tuple((k, float(s[r])) for k, s in legs if s[r] > 0))
        for r in order.tolist()
    ]


def _hybrid_hits(
    matrix: Matrix, distances: np.ndarray, legs: list[tuple[str, np.ndarray]], mask: np.ndarray, top_k: int
) -> list[Hit]:
    """Reciprocal rank fusion of the vector search's and each text search's top ``top_k``."""
    fused = np.zeros(len(matrix.keys), dtype=np.float64)
    vector_leg = _top(distances, mask, top_k, ascending=True)
    fused[vector_leg] += 1.0 / (RRF_K + np.arange(1, len(vector_leg) + 1))
    text_legs: list[tuple[str, np.ndarray, set[int]]] = []
    for key, scores in legs:
        leg = _top(scores, mask & (scores > 0), top_k, ascending=False)
        fused[leg] += 1.0 / (RRF_K + np.arange(1, len(leg) + 1))
        text_legs.append((key, scores, set(leg.tolist())))
    in_vector = set(vector_leg.tolist())
    candidates = np.flatnonzero(fused > 0)
    order = candidates[np.lexsort((candidates, distances[candidates], -fused[candidates]))][:top_k]
    return [
        Hit(
            matrix.keys[r],
            matrix.records[r],
            distance=float(distances[r]),
            fused=float(fused[r]),
            bm25=tuple((k, float(s[r])) for k, s, rows in text_legs if r in rows),
            in_vector_leg=r in in_vector,
        )
        for r in order.tolist()
    ]


def _filter_mask(state: IndexState, document: Any, enhanced: bool) -> np.ndarray:
    """Which rows match: checked on every query, evaluated once per filter between writes."""
    predicate = compile_filter(document, filterable=state.is_filterable, enhanced=enhanced)
    masks: dict[str, np.ndarray] = state.cached("filter-masks", dict)
    name = json.dumps(document, sort_keys=True)
    if name not in masks:
        if len(masks) >= MAX_CACHED_FILTERS:
            masks.clear()
        records = state.matrix().records
        masks[name] = np.fromiter((predicate(r.metadata) for r in records), dtype=bool, count=len(records))
    return masks[name]


def _check_texts(state: IndexState, texts: Any) -> None:
    if not isinstance(texts, list) or len(texts) > MAX_QUERY_TEXTS:
        raise invalid("/queryTexts", f"Member must have length less than or equal to {MAX_QUERY_TEXTS}")
    seen: set[str] = set()
    for entry in texts:
        key = entry.get("metadataKey") if isinstance(entry, dict) else None
        text = entry.get("text") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_QUERY_TEXT_CHARS:
            raise invalid(
                "/queryTexts/text", f"Member must have length between 1 and {MAX_QUERY_TEXT_CHARS}, inclusive"
            )
        if not isinstance(key, str) or key not in state.text_search:
            raise ValidationError(f"Metadata key '{key}' is not configured for full-text search on this index")
        if key in seen:
            raise ValidationError(f"Metadata key '{key}' appears more than once in queryTexts")
        seen.add(key)


def _distances(matrix: Matrix, query: np.ndarray, metric: str) -> np.ndarray:
    """Exact distances from ``query`` to every row: 1 - cosine similarity, or the L2 norm."""
    if metric == "cosine":
        dots = (matrix.vectors @ query).astype(np.float64)
        return 1.0 - dots / (matrix.norms.astype(np.float64) * float(np.linalg.norm(query)))
    return np.linalg.norm(matrix.vectors - query, axis=1).astype(np.float64)


def _top(values: np.ndarray, mask: np.ndarray, k: int, *, ascending: bool) -> np.ndarray:
    """Rows allowed by ``mask``, best ``k`` first; ties keep row (write) order."""
    rows = np.flatnonzero(mask)
    keyed = values[rows] if ascending else -values[rows]
    if len(rows) > k:
        part = np.argpartition(keyed, k - 1)[:k]
        rows, keyed = rows[part], keyed[part]
    return rows[np.lexsort((rows, keyed))]


def _fingerprint(index_arn: str, params: dict[str, Any]) -> str:
    """What must not change between the pages of one query."""
    fixed = {k: params.get(k) for k in ("topK", "queryVector", "filter", "queryTexts", "queryMode")}
    return hashlib.sha256(json.dumps([index_arn, fixed], sort_keys=True, default=str).encode()).hexdigest()


def _session_token(fingerprint: str, hits: list[Hit], offset: int, previous: str | None) -> str:
    now = time.monotonic()
    with _sessions_lock:
        session_id = _decode(previous)[0] if previous else None
        if session_id is None:
            for stale in [k for k, s in _sessions.items() if s.expires < now]:
                del _sessions[stale]
            session_id = secrets.token_hex(16)
            _sessions[session_id] = _Session(fingerprint, hits, now + SESSION_SECONDS)
    return page_token({"session": session_id, "offset": offset})


def _decode(token: str) -> tuple[str, int]:
    return page_position(token, lambda position: (str(position["session"]), int(position["offset"])))


def _resume(token: str, fingerprint: str) -> tuple[list[Hit], int]:
    session_id, offset = _decode(token)
    with _sessions_lock:
        session = _sessions.get(session_id)
    if session is None or session.expires < time.monotonic():
        raise ValidationError("The provided nextToken has expired; issue the original query again")
    if session.fingerprint != fingerprint:
        raise ValidationError("A request with a nextToken must repeat the original query's parameters")
    return session.hits, offset
