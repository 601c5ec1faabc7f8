"""What the S3 Vectors emulator keeps for each index beside moto's objects, and AWS's limits.

moto stores vectors as JSON-shaped dicts and checks almost nothing. Here each index keeps its
vectors as float32 arrays (AWS stores float32 and returns the rounded values), its metadata
configuration and mode, and a lazily rebuilt matrix of all vectors, so a query over 10,000
vectors is one matrix product instead of a Python loop. Writes are validated against the
limits AWS documents (s3-vectors-limitations) and rejected whole, as AWS does.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from moto.core.exceptions import ServiceException
from moto.s3vectors.exceptions import ValidationError

# Buckets created before this date default to CLASSIC and may use it; later ones are ENHANCED only.
CLASSIC_CUTOFF = datetime(2026, 9, 30, tzinfo=UTC)
CLASSIC, ENHANCED = "CLASSIC", "ENHANCED"
INDEX_MODES = (CLASSIC, ENHANCED)

MAX_DIMENSION = 4096
MAX_PUT_VECTORS = 500
MAX_GET_KEYS = 100
MAX_DELETE_KEYS = 500
MAX_KEY_CHARS = 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50
MAX_NON_FILTERABLE_KEYS = 10
MAX_TEXT_SEARCH_KEYS = 10
MAX_METADATA_KEY_CHARS = 63
LANGUAGES = ("en", "fr", "es", "pt", "it", "de", "nl", "zh", "ja", "ko")


def now() -> datetime:
    """The emulator's clock; tests replace it to make buckets that predate the ENHANCED default."""
    return datetime.now(UTC)


class ConflictException(ServiceException):
    """AWS's 409: the name is taken, or the change conflicts with the index's current state."""

    code = "ConflictException"


def invalid(path: str, constraint: str) -> ValidationError:
    """AWS's ValidationException (moto's ValidationError: its code, and a message is all else that
    reaches the client), worded like AWS's Smithy validation messages."""
    return ValidationError(f"1 validation error detected. Value at '{path}' failed to satisfy constraint: {constraint}")


def int_param(value: Any, path: str, low: int, high: int, default: int | None = None) -> int:
    """An integer request member between ``low`` and ``high``; ``default`` when it is absent (if given)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(path, f"Member must be between {low} and {high}, inclusive")
    return value


def enum_param(value: Any, path: str, allowed: Sequence[str]) -> str:
    """A request member that must be one of ``allowed``."""
    if value not in allowed:
        raise invalid(path, f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return str(value)


def page_token(position: Any) -> str:
    """A ``nextToken`` that carries ``position`` (any JSON value) to the next request."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def page_position(token: str, read: Callable[[Any], Any] = lambda position: position) -> Any:
    """What :func:`page_token` put in ``token``, through ``read`` (which may raise KeyError,
    TypeError or ValueError); a ValidationException if the token is not one of ours."""
    try:
        return read(json.loads(base64.urlsafe_b64decode(token.encode())))
    except (ValueError, KeyError, TypeError) as error:
        raise ValidationError("The provided nextToken is not valid") from error


def json_size(value: Any) -> int:
    """Metadata size as AWS bills it, approximated as compact JSON in UTF-8 (the docs do not say)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass(frozen=True)
class TextSearchConfig:
    metadata_key: str
    language: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"metadataKey": self.metadata_key}
        if self.language:
            out["language"] = self.language
        out["status"] = "ACTIVE"  # built on demand from the stored vectors: never behind
        return out


@dataclass(frozen=True, eq=False)
class Record:
    """One stored vector. Replaced, never mutated, so a query's snapshot stays valid.

    ``terms`` caches what the text analyzers made of its metadata, so rebuilding a BM25 index
    after a write analyzes only the vectors that write brought.
    """

    array: np.ndarray
    metadata: dict[str, Any]
    terms: dict[tuple[str, str | None], list[str]] = field(default_factory=dict, repr=False)


@dataclass
class Matrix:
    """All vectors of an index in row order."""

    keys: list[str]
    vectors: np.ndarray
    norms: np.ndarray
    records: list[Record]


@dataclass
class IndexState:
    """An index's configuration and vectors; ``lock`` guards both (moto serves requests in threads)."""

    dimension: int
    metric: str
    mode: str
    creation_time: datetime
    non_filterable: tuple[str, ...] = ()
    text_search: dict[str, TextSearchConfig] = field(default_factory=dict)
    encryption: dict[str, Any] | None = None
    records: dict[str, Record] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Values derived from the vectors (matrix, BM25 indexes, key order, filter masks): every
    # write empties it, and each is rebuilt by the first request that needs it.
    caches: dict[Any, Any] = field(default_factory=dict, repr=False)

    def is_filterable(self, key: str) -> bool:
        return key not in self.non_filterable

    def metadata_configuration(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.non_filterable:
            out["nonFilterableMetadataKeys"] = list(self.non_filterable)
        if self.text_search:
            out["textSearchConfigurations"] = [config.to_json() for config in self.text_search.values()]
        return out or None

    def put(self, vectors: list[dict[str, Any]]) -> None:
        """Validate every vector first, then write them all: a bad one rejects the request."""
        if not 1 <= len(vectors) <= MAX_PUT_VECTORS:
            raise invalid("/vectors", f"Member must have length between 1 and {MAX_PUT_VECTORS}, inclusive")
        checked = [(vector["key"], self._record(vector)) for vector in vectors]
        with self.lock:
            for key, record in checked:
                self.records[key] = record
            self.caches.clear()

    def delete(self, keys: Iterable[str]) -> None:
        with self.lock:
            for key in keys:
                self.records.pop(key, None)
            self.caches.clear()

    def matrix(self) -> Matrix:
        """The vectors as one float32 matrix, rebuilt only after writes."""
        return self.cached("matrix", self._build_matrix)

    def cached(self, name: Any, build: Callable[[], Any]) -> Any:
        """A value derived from the vectors, built once between writes."""
        with self.lock:
            if name not in self.caches:
                self.caches[name] = build()
            return self.caches[name]

    def _build_matrix(self) -> Matrix:
        keys = list(self.records)
        records = [self.records[key] for key in keys]
        vectors = np.stack([r.array for r in records]) if records else np.zeros((0, self.dimension), np.float32)
        return Matrix(keys, vectors, np.linalg.norm(vectors, axis=1), records)

    def _record(self, vector: Any) -> Record:
        if not isinstance(vector, dict):
            raise invalid("/vectors", "Member must be a structure")
        key = vector.get("key")
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
            raise invalid("/vectors/key", f"Member must have length between 1 and {MAX_KEY_CHARS}, inclusive")
        data = vector.get("data")
        values = data.get("float32") if isinstance(data, dict) else None
        if not isinstance(values, list):
            raise ValidationError(f"Invalid record for key '{key}': vector data must be float32")
        array = vector_array(values, self.dimension, self.metric, f"Invalid record for key '{key}'")
        metadata = vector.get("metadata")
        metadata = {} if metadata is None else metadata
        self._check_metadata(key, metadata)
        return Record(array, metadata)

    def _check_metadata(self, key: str, metadata: Any) -> None:
        prefix = f"Invalid record for key '{key}'"
        if not isinstance(metadata, dict):
            raise ValidationError(f"{prefix}: metadata must be a JSON object")
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValidationError(
                f"{prefix}: metadata has {len(metadata)} keys, more than the limit of {MAX_METADATA_KEYS}"
            )
        for name, value in metadata.items():
            if not _supported_value(value):
                raise ValidationError(
                    f"{prefix}: metadata key '{name}' must be a string, number, boolean or a list of them"
                )
        total = json_size(metadata)
        if total > MAX_METADATA_BYTES:
            raise ValidationError(
                f"{prefix}: metadata is {total} bytes, more than the limit of {MAX_METADATA_BYTES} bytes"
            )
        filterable = json_size({k: v for k, v in metadata.items() if self.is_filterable(k)})
        if filterable > MAX_FILTERABLE_BYTES:
            raise ValidationError(
                f"{prefix}: filterable metadata is {filterable} bytes, more than the limit of "
                f"{MAX_FILTERABLE_BYTES} bytes"
            )


def vector_array(values: list[Any], dimension: int, metric: str, prefix: str) -> np.ndarray:
    """Values as float32, checked as AWS checks them: length, finite, and not all zero for cosine."""
    if len(values) != dimension:
        raise ValidationError(f"{prefix}: vector must have length {dimension}, but has length {len(values)}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ValidationError(f"{prefix}: vector data must contain only numbers")
    with np.errstate(over="ignore"):
        array = np.asarray(values, dtype=np.float64).astype(np.float32)
    if not np.isfinite(array).all():
        raise ValidationError(f"{prefix}: vector data must contain only finite float32 values (no NaN or Infinity)")
    if metric == "cosine" and not array.any():
        raise ValidationError(f"{prefix}: zero vectors are not allowed with the cosine distance metric")
    return array


def _supported_value(value: Any) -> bool:
    """AWS documents string, number, boolean and list metadata; objects and nulls are refused."""
    if isinstance(value, list):
        return all(_primitive(v) for v in value)
    return _primitive(value)


def _primitive(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)
