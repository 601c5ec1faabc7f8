"""How chunks live in a shared S3 Vectors index: keys, metadata, and the filter that scopes
every query to one tenant's stores.

A bucket holds at most 10,000 indexes and a deployment may serve many tenants with many stores,
so stores do not get indexes of their own: every store whose chunks were embedded with the same
model shares that model's index, and each vector carries its tenant, store and file as
filterable metadata. :func:`scoped_filter` is the one place a query's filter is built, and it
always pins the tenant and the stores; a query takes a :class:`Scope`, which builds it, never a
filter of its own: no query can reach another tenant's chunks.

==================  ==========================================================  ==============
metadata key        value                                                       filterable
==================  ==========================================================  ==============
``tenant``          the tenant id                                               yes
``vector_store_id`` the store                                                   yes
``file_id``         the file                                                    yes
``chunk``           the chunk's number in the file                              yes
``attr_<key>``      each of the store file's ``attributes``                     yes
``text``            the chunk's text (full-text search runs on it)              no
``file_name``       the file's name, for results and citations                  no
==================  ==========================================================  ==============
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types.vector_store import AttributeValue, ComparisonFilter, CompoundFilter, Filter

TEXT_KEY = "text"
# S3 Vectors takes at most 40 KB of metadata a vector: the chunk's text gets this much of it,
# the file name (up to 512 characters), the ids and the attributes (1,536 bytes) the rest.
MAX_TEXT_BYTES = 32_000
FILE_NAME_KEY = "file_name"
NON_FILTERABLE_KEYS = (TEXT_KEY, FILE_NAME_KEY)
ATTRIBUTE_PREFIX = "attr_"
_OPERATORS = {name: "$" + name for name in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")}


def chunk_key(vector_store_id: str, file_id: str, chunk: int) -> str:
    """Deterministic, so writing a chunk again (a retried ingestion) overwrites it."""
    return f"{vector_store_id}/{file_id}/{chunk}"


def chunk_keys(vector_store_id: str, file_id: str, chunk_count: int) -> list[str]:
    """Every key a file's ingestion wrote (``chunk_count`` is recorded before the first)."""
    return [chunk_key(vector_store_id, file_id, n) for n in range(chunk_count)]


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as it is written to the index."""

    tenant: str
    vector_store_id: str
    file_id: str
    chunk: int
    file_name: str
    text: str
    vector: list[float]
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return chunk_key(self.vector_store_id, self.file_id, self.chunk)

    def metadata(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "vector_store_id": self.vector_store_id,
            "file_id": self.file_id,
            "chunk": self.chunk,
            TEXT_KEY: self.text,
            FILE_NAME_KEY: self.file_name,
            **{ATTRIBUTE_PREFIX + key: value for key, value in self.attributes.items()},
        }


@dataclass(frozen=True)
class Hit:
    """A chunk a query found: ``score`` (0 to 1) is what the API reports and ``score_threshold``
    applies to; ``rank`` orders results of several queries (comparable within one mode)."""

    key: str
    vector_store_id: str
    file_id: str
    chunk: int
    file_name: str
    text: str
    attributes: dict[str, AttributeValue]
    score: float
    rank: float


def hit_from(key: str, metadata: dict[str, Any], score: float, rank: float) -> Hit:
    attributes = {k[len(ATTRIBUTE_PREFIX) :]: v for k, v in metadata.items() if k.startswith(ATTRIBUTE_PREFIX)}
    return Hit(
        key=key,
        vector_store_id=str(metadata.get("vector_store_id", "")),
        file_id=str(metadata.get("file_id", "")),
        chunk=int(metadata.get("chunk", 0)),
        file_name=str(metadata.get(FILE_NAME_KEY, "")),
        text=str(metadata.get(TEXT_KEY, "")),
        attributes=attributes,
        score=score,
        rank=rank,
    )


def attribute_filter(condition: Filter) -> dict[str, Any]:
    """An OpenAI attribute filter (comparison or compound) as an S3 Vectors metadata filter."""
    if isinstance(condition, CompoundFilter):
        return {f"${condition.type}": [attribute_filter(part) for part in condition.filters]}
    assert isinstance(condition, ComparisonFilter)
    return {ATTRIBUTE_PREFIX + condition.key: {_OPERATORS[condition.type]: condition.value}}


@dataclass(frozen=True)
class Scope:
    """What a query may see: one tenant's chunks in some of its stores, optionally narrowed by
    the stores' attribute filter. :meth:`S3VectorsIndex.query` takes nothing else, so no query
    can be sent without the tenant and the stores pinned."""

    tenant: str
    vector_store_ids: tuple[str, ...]
    condition: Filter | None = None

    def filter(self) -> dict[str, Any]:
        return scoped_filter(self.tenant, list(self.vector_store_ids), self.condition)


def scoped_filter(tenant: str, vector_store_ids: list[str], condition: Filter | None = None) -> dict[str, Any]:
    """The filter of every query: this tenant, these stores, and the caller's attribute filter."""
    if not vector_store_ids:
        raise ValueError("a query must name at least one vector store")
    clauses: list[dict[str, Any]] = [
        {"tenant": {"$eq": tenant}},
        {"vector_store_id": {"$in": list(vector_store_ids)}},
    ]
    if condition is not None:
        clauses.append(attribute_filter(condition))
    return {"$and": clauses}
