"""The chunk index: how chunks are laid out in S3 Vectors (:mod:`.layout`) and the adapter that
writes and queries them (:mod:`.s3vectors`), the same code on AWS and in the local stack."""

from .layout import ChunkRecord, Hit, Scope, attribute_filter, chunk_key, chunk_keys, scoped_filter
from .s3vectors import QueryMode, S3VectorsIndex, index_named

__all__ = [
    "ChunkRecord",
    "Hit",
    "QueryMode",
    "S3VectorsIndex",
    "Scope",
    "attribute_filter",
    "chunk_key",
    "chunk_keys",
    "index_named",
    "scoped_filter",
]
