"""The index of chunks in Amazon S3 Vectors (boto3 ``s3vectors``): write, delete, query.

The same code runs on AWS and in the local stack, whose emulated AWS serves the S3 Vectors
calls moto lacks (``QueryVectors`` among them). The index itself is declared in
``template.yaml``; what CloudFormation cannot declare (full-text search on the ``text`` key,
which needs the index in ENHANCED mode) the ingest function sets up before it first writes.

A query names a query vector and, for hybrid ranking, the query text: S3 Vectors ranks by
BM25 on ``text`` and by vector distance, and fuses the two rankings (reciprocal rank fusion).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ..config import boto_config, settings
from .layout import TEXT_KEY, ChunkRecord, Hit, Scope, hit_from

logger = Logger()
PUT_BATCH = 500  # PutVectors and DeleteVectors take at most 500 vectors
GET_BATCH = 100  # GetVectors takes at most 100 keys
MAX_TOP_K = 100  # QueryVectors returns at most 100 results a page
QueryMode = Literal["vector", "keyword", "hybrid"]


def _batches[T](items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class S3VectorsIndex:
    def __init__(self, index: str, bucket: str | None = None, client: Any = None) -> None:
        self.bucket = bucket or settings().vector_bucket
        self.index = index
        self.client = client or _client()
        self._text_search: bool | None = None
        self._lock = threading.Lock()

    def _names(self) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": self.index}

    # ------------------------------------------------------------ set-up

    def text_search_ready(self, *, enable: bool = False) -> bool:
        """Whether full-text search on ``text`` is active. With ``enable`` (the ingest function,
        the index's first writer) it is turned on where it is not: ENHANCED mode, then a text
        search configuration, neither of which CloudFormation can declare. Until it is active
        (S3 Vectors builds it), queries rank by vectors alone."""
        with self._lock:
            if self._text_search:
                return True
            index = self.client.get_index(**self._names())["index"]
            configured = (index.get("metadataConfiguration") or {}).get("textSearchConfigurations") or []
            text = next((c for c in configured if c.get("metadataKey") == TEXT_KEY), None)
            if text is None and enable:
                if index.get("indexMode") != "ENHANCED":
                    self.client.update_index_mode(**self._names(), indexMode="ENHANCED")
                try:
                    self.client.update_metadata_configuration(
                        **self._names(), add={"textSearchConfigurations": [{"metadataKey": TEXT_KEY}]}
                    )
                except ClientError as error:
                    # Concurrent first writers (several ingestions at once): one of them won.
                    if error.response.get("Error", {}).get("Code") != "ConflictException":
                        raise
                else:
                    logger.info("enabled full-text search", extra={"index": self.index})
                return False
            self._text_search = text is not None and text.get("status", "ACTIVE") == "ACTIVE"
            return self._text_search

    # ------------------------------------------------------------ vectors

    def put(self, records: Iterable[ChunkRecord]) -> None:
        self._put([{"key": r.key, "data": {"float32": r.vector}, "metadata": r.metadata()} for r in records])

    def _put(self, vectors: list[dict[str, Any]]) -> None:
        for batch in _batches(vectors, PUT_BATCH):
            self.client.put_vectors(**self._names(), vectors=batch)

    def delete(self, keys: list[str]) -> None:
        for batch in _batches(keys, PUT_BATCH):
            self.client.delete_vectors(**self._names(), keys=batch)

    def get(self, keys: list[str]) -> list[dict[str, Any]]:
        """The vectors (data and metadata) of these keys that exist."""
        found: list[dict[str, Any]] = []
        for batch in _batches(keys, GET_BATCH):
            response = self.client.get_vectors(**self._names(), keys=batch, returnData=True, returnMetadata=True)
            found += response.get("vectors", [])
        return found

    def rewrite_metadata(self, keys: list[str], change: dict[str, Any], remove_prefix: str) -> None:
        """Give existing vectors new metadata (a store file's attributes changed): read each,
        drop the keys that start with ``remove_prefix``, add ``change``, write it back."""
        updated = []
        for vector in self.get(keys):
            metadata = {k: v for k, v in (vector.get("metadata") or {}).items() if not k.startswith(remove_prefix)}
            updated.append({"key": vector["key"], "data": vector["data"], "metadata": {**metadata, **change}})
        self._put(updated)

    def query(
        self,
        scope: Scope,
        *,
        vector: list[float] | None,
        text: str | None,
        top_k: int,
        mode: QueryMode = "hybrid",
    ) -> list[Hit]:
        """The ``top_k`` best chunks within ``scope`` (a tenant's stores, the only filter a query
        may have), best first."""
        if not isinstance(scope, Scope):
            raise TypeError("a query is scoped by a layout.Scope, not a filter of its own")
        kwargs: dict[str, Any] = {
            **self._names(),
            "topK": min(top_k, MAX_TOP_K),
            "filter": scope.filter(),
            "returnMetadata": True,
            "returnDistance": True,
            "returnScores": True,
        }
        keyword = mode in ("keyword", "hybrid") and bool(text) and self.text_search_ready()
        if mode != "keyword" or not keyword:
            if vector is None:
                raise ValueError("a vector query needs a query vector")
            kwargs["queryVector"] = {"float32": vector}
        if keyword:
            kwargs["queryTexts"] = [{"text": str(text)[:1024], "metadataKey": TEXT_KEY}]
        response = self.client.query_vectors(**kwargs)
        return _hits(response, hybrid="queryVector" in kwargs and "queryTexts" in kwargs)


# Reciprocal rank fusion adds 1/(60 + rank) per ranking: a hybrid query's best possible fused
# score is 2/61 (first by vectors and by keywords).
_RRF_K = 60
_BEST_FUSED = 2 / (_RRF_K + 1)


def _hits(response: dict[str, Any], *, hybrid: bool) -> list[Hit]:
    """Scores from 0 to 1: the fused score as a share of the best possible one for a hybrid
    query; the cosine similarity for a vector query; the BM25 score relative to the best result
    for a keyword query."""
    metric = response.get("distanceMetric", "cosine")
    items = response.get("vectors", [])
    top_bm25 = max((_bm25(item) for item in items), default=0.0) or 1.0
    hits = []
    for item in items:
        scores = item.get("scores") or {}
        if hybrid:
            rank = float(scores.get("fused") or 0.0)
            score = min(1.0, rank / _BEST_FUSED)
        elif "distance" in item:
            score = rank = _similarity(float(item["distance"]), metric)
        else:
            rank = _bm25(item)
            score = rank / top_bm25
        hits.append(hit_from(str(item["key"]), item.get("metadata") or {}, score, rank))
    return hits


def _bm25(item: dict[str, Any]) -> float:
    return sum(float(s.get("score", 0.0)) for s in (item.get("scores") or {}).get("bm25Scores") or [])


def _similarity(distance: float, metric: str) -> float:
    """Cosine similarity (1 - distance) for a cosine index, else a decreasing function of distance."""
    if metric == "cosine":
        return max(0.0, min(1.0, 1.0 - distance))
    return 1.0 / (1.0 + distance)


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("s3vectors", config=boto_config())


@lru_cache(maxsize=16)
def index_named(name: str) -> S3VectorsIndex:
    """One handle per index per process, so the text-search set-up happens once."""
    return S3VectorsIndex(name)
