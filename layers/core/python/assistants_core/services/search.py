"""Searching vector stores: what ``POST /vector_stores/{id}/search`` and the ``file_search``
tool of a run share.

Each store's chunks live in the index of the model they were embedded with, so stores are
grouped by index; each query is embedded with that model and sent with its text (hybrid
ranking: vectors and BM25, fused by reciprocal rank), scoped to the tenant and the stores by
a :class:`assistants_core.vectors.Scope`. Results of several queries and indexes are
merged by rank. A result's score (0 to 1, what ``score_threshold`` applies to) is its fused
score as a share of the best possible one (first by both vectors and keywords) in hybrid
ranking, and its cosine similarity to the query with ranker ``none`` (vectors alone).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from botocore.exceptions import ClientError

from ..embeddings import embedder_for
from ..errors import InvalidRequestError
from ..repository import Repository
from ..types.vector_store import Filter, VectorStoreSearchParams
from ..vectors import Hit, QueryMode, S3VectorsIndex, Scope, index_named
from .vector_stores import StoreRecord, load_store, require_active, touch

_WORD = re.compile(r"[\w'-]+", re.UNICODE)
# Words a question is made of that say nothing about what to find (for rewrite_query).
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "should",
        "so",
        "tell",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "any",
        "some",
        "find",
        "show",
        "give",
        "list",
        "",
    ]
)


def rewrite(query: str) -> str:
    """A question as search terms: its content words, in order (``rewrite_query``)."""
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOPWORDS]
    return " ".join(words) or query


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[Hit]
    queries: list[str]
    stores: list[StoreRecord]


def _query(
    index: S3VectorsIndex, scope: Scope, vector: list[float] | None, text: str, top_k: int, mode: QueryMode
) -> list[Hit]:
    """One query; S3 Vectors refusing it (a ValidationException: the request, not the service)
    is the client's 400, not a 500 the SDK would retry."""
    try:
        return index.query(scope, vector=vector, text=text, top_k=top_k, mode=mode)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise
        message = error.response.get("Error", {}).get("Message", "")
        raise InvalidRequestError(f"The search could not run: {message}", code="invalid_value") from error


def resolve_stores(repo: Repository, tenant: str, vector_store_ids: list[str], param: str) -> list[StoreRecord]:
    """The stores to search; a 404 for one that does not exist, a 400 for one that expired."""
    records = []
    for index, store_id in enumerate(vector_store_ids):
        named = f"{param}[{index}]" if len(vector_store_ids) > 1 else param
        record = load_store(repo, tenant, store_id, param=named)
        require_active(record, param=named)
        records.append(record)
    return records


def search(
    repo: Repository,
    tenant: str,
    stores: list[StoreRecord],
    queries: list[str],
    *,
    max_results: int,
    condition: Filter | None = None,
    mode: QueryMode = "hybrid",
    score_threshold: float = 0.0,
    rewrite_queries: bool = False,
) -> SearchOutcome:
    if rewrite_queries:
        queries = [rewrite(q) for q in queries]
    groups: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for record in stores:
        groups[(record.index, record.embedding_model, record.embedding_dimensions)].append(record.store.id)
    best: dict[tuple[str, str], Hit] = {}
    for (index_name, model, dimensions), store_ids in groups.items():
        embedder = embedder_for(model, dimensions)
        index = index_named(index_name)
        scope = Scope(tenant, tuple(store_ids), condition)
        for query in queries:
            vector = embedder.embed_query(query) if mode != "keyword" else None
            for hit in _query(index, scope, vector, query, max_results, mode):
                key = (index_name, hit.key)
                if key not in best or hit.rank > best[key].rank:
                    best[key] = hit
    ranked = sorted(best.values(), key=lambda h: h.rank, reverse=True)
    hits = [hit for hit in ranked if hit.score >= score_threshold][:max_results]
    touch(repo, tenant, stores)
    return SearchOutcome(hits=hits, queries=queries, stores=stores)


def search_store(repo: Repository, tenant: str, vector_store_id: str, params: VectorStoreSearchParams) -> SearchOutcome:
    """``POST /vector_stores/{id}/search``: ranker ``none`` ranks by vectors alone."""
    ranking = params.ranking_options
    return search(
        repo,
        tenant,
        resolve_stores(repo, tenant, [vector_store_id], "vector_store_id"),
        params.queries(),
        max_results=params.max_num_results,
        condition=params.filters,
        mode="vector" if ranking is not None and ranking.ranker == "none" else "hybrid",
        score_threshold=ranking.score_threshold if ranking is not None else 0.0,
        rewrite_queries=params.rewrite_query,
    )
