"""Vector stores, their files and file batches, search, and the parameters of each endpoint."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
    model_validator,
)

from .common import Metadata, ObjectModel, RequestModel

# OpenAI's auto chunking: 800-token chunks overlapping by 400.
AUTO_CHUNK_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400
# The bounds of a static strategy's max_chunk_size_tokens.
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
MAX_STORE_FILE_IDS = 500
MAX_BATCH_FILES = 2000
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 512
# Attributes travel with every chunk as filterable metadata, of which S3 Vectors allows 2 KB a
# vector; the tenant, store and file ids take the rest.
MAX_ATTRIBUTES_BYTES = 1536
# S3 Vectors evaluates at most 100 filter conditions a query; the tenant and store scope takes
# three (an and of two).
MAX_FILTER_CONDITIONS = 64
# A query is embedded as it is: every embedding model takes this much (Titan v2 takes 50,000).
MAX_QUERY_CHARACTERS = 4096

AttributeValue = str | float | bool


def _check_attributes(value: dict[str, AttributeValue] | None) -> dict[str, AttributeValue] | None:
    if value is None:
        return None
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"attributes may hold at most {MAX_ATTRIBUTES} pairs, got {len(value)}")
    for key, item in value.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            raise ValueError(f"attribute keys must be 1 to {MAX_ATTRIBUTE_KEY} characters, '{key[:20]}' is {len(key)}")
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_VALUE:
            raise ValueError(
                f"attribute values may be at most {MAX_ATTRIBUTE_VALUE} characters, '{key}' is {len(item)}"
            )
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise ValueError(
            f"attributes may take at most {MAX_ATTRIBUTES_BYTES} bytes as JSON (they are filterable metadata of "
            f"every chunk), these take {size}"
        )
    return value


Attributes = Annotated[dict[str, AttributeValue] | None, AfterValidator(_check_attributes)]


# ---------------------------------------------------------------- chunking and expiry


class AutoChunking(RequestModel):
    type: Literal["auto"]


class StaticChunkingSettings(RequestModel):
    max_chunk_size_tokens: Annotated[int, Field(ge=MIN_CHUNK_TOKENS, le=MAX_CHUNK_TOKENS)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunkingSettings:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError(
                "chunk_overlap_tokens must not exceed half of max_chunk_size_tokens "
                f"({self.chunk_overlap_tokens} > {self.max_chunk_size_tokens // 2})"
            )
        return self


class StaticChunking(RequestModel):
    type: Literal["static"]
    static: StaticChunkingSettings


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


def resolved_chunking(strategy: AutoChunking | StaticChunking | None) -> dict[str, Any]:
    """The strategy a file is chunked with, as the API reports it (auto is static 800/400)."""
    if isinstance(strategy, StaticChunking):
        return {"type": "static", "static": strategy.static.model_dump()}
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": AUTO_CHUNK_TOKENS, "chunk_overlap_tokens": AUTO_OVERLAP_TOKENS},
    }


class StoreExpiresAfter(RequestModel):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


# ---------------------------------------------------------------- filters


class ComparisonFilter(RequestModel):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: Annotated[str, Field(min_length=1, max_length=MAX_ATTRIBUTE_KEY)]
    value: str | float | bool | list[str | float]

    @model_validator(mode="after")
    def _lists_for_sets(self) -> ComparisonFilter:
        if self.type in ("in", "nin") and not isinstance(self.value, list):
            raise ValueError(f"a '{self.type}' filter takes a list of values")
        if self.type not in ("in", "nin") and isinstance(self.value, list):
            raise ValueError(f"a '{self.type}' filter takes one value, not a list")
        if self.type in ("gt", "gte", "lt", "lte") and isinstance(self.value, (bool, str)):
            raise ValueError(f"a '{self.type}' filter compares numbers")
        return self


def _filter_kind(value: Any) -> str:
    """Which filter a value is, by its ``type``: its errors then come from that shape alone."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "compound" if kind in ("and", "or") else "comparison"


Filter = Annotated[
    Annotated[ComparisonFilter, Tag("comparison")] | Annotated["CompoundFilter", Tag("compound")],
    Discriminator(_filter_kind),
]


class CompoundFilter(RequestModel):
    type: Literal["and", "or"]
    filters: Annotated[list[Filter], Field(min_length=1, max_length=32)]


# ---------------------------------------------------------------- request bodies


class VectorStoreCreateParams(RequestModel):
    file_ids: Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STORE_FILE_IDS)] = []
    name: Annotated[str, Field(max_length=256)] | None = None
    expires_after: StoreExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata = None


class VectorStoreUpdateParams(RequestModel):
    name: Annotated[str, Field(max_length=256)] | None = None
    expires_after: StoreExpiresAfter | None = None
    metadata: Metadata = None


class VectorStoreFileCreateParams(RequestModel):
    file_id: Annotated[str, Field(min_length=1)]
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes = None


class VectorStoreFileUpdateParams(RequestModel):
    attributes: Attributes


FileId = Annotated[str, Field(min_length=1)]


class FileBatchCreateParams(RequestModel):
    file_ids: Annotated[list[FileId], Field(min_length=1, max_length=MAX_BATCH_FILES)] | None = None
    files: Annotated[list[VectorStoreFileCreateParams], Field(min_length=1, max_length=MAX_BATCH_FILES)] | None = None
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes = None

    @model_validator(mode="after")
    def _one_list(self) -> FileBatchCreateParams:
        if (self.file_ids is None) == (self.files is None):
            raise ValueError("give exactly one of file_ids and files")
        return self

    def entries(self) -> list[VectorStoreFileCreateParams]:
        """Every file of the batch with its own settings, falling back to the batch's."""
        if self.files is not None:
            return [
                f.model_copy(
                    update={
                        "chunking_strategy": f.chunking_strategy or self.chunking_strategy,
                        "attributes": f.attributes if f.attributes is not None else self.attributes,
                    }
                )
                for f in self.files
            ]
        return [
            VectorStoreFileCreateParams(
                file_id=file_id, chunking_strategy=self.chunking_strategy, attributes=self.attributes
            )
            for file_id in self.file_ids or []
        ]


class SearchRankingOptions(RequestModel):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


def filter_conditions(condition: Filter) -> int:
    """How many conditions a filter holds: its comparisons and the compounds that join them."""
    if isinstance(condition, CompoundFilter):
        return 1 + sum(filter_conditions(part) for part in condition.filters)
    return 1


def _check_filter_size(condition: Filter | None) -> Filter | None:
    if condition is not None and filter_conditions(condition) > MAX_FILTER_CONDITIONS:
        raise ValueError(
            f"a filter may hold at most {MAX_FILTER_CONDITIONS} conditions (comparisons and the and/or that "
            f"join them), this one holds {filter_conditions(condition)}"
        )
    return condition


Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARACTERS)]


class VectorStoreSearchParams(RequestModel):
    query: Query | Annotated[list[Query], Field(min_length=1, max_length=10)]
    rewrite_query: bool = False
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    filters: Annotated[Filter | None, AfterValidator(_check_filter_size)] = None
    ranking_options: SearchRankingOptions | None = None

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


# ---------------------------------------------------------------- objects


class FileCounts(ObjectModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(ObjectModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str | None = None
    usage_bytes: int = 0
    file_counts: FileCounts = FileCounts()
    status: Literal["expired", "in_progress", "completed"] = "completed"
    expires_after: dict[str, Any] | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, str] = {}

    @model_serializer(mode="wrap")
    def _no_null_expiry(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A store that never expires has no ``expires_after``: the spec's is an object, never null."""
        data: dict[str, Any] = handler(self)
        if data.get("expires_after", ...) is None:
            del data["expires_after"]
        return data


StoreFileErrorCode = Literal["server_error", "unsupported_file", "invalid_file"]


class StoreFileError(ObjectModel):
    code: StoreFileErrorCode
    message: str


class VectorStoreFile(ObjectModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int = 0
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    last_error: StoreFileError | None = None
    chunking_strategy: dict[str, Any] | None = None
    attributes: dict[str, AttributeValue] | None = None


class FileBatch(ObjectModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts = FileCounts()


class SearchResultContent(ObjectModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(ObjectModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, AttributeValue] | None = None
    content: list[SearchResultContent]


class SearchResultsPage(ObjectModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


class FileContentPart(ObjectModel):
    type: Literal["text"] = "text"
    text: str


class FileContentPage(ObjectModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[FileContentPart]
    has_more: bool = False
    next_page: str | None = None
