"""Amazon S3 Vectors as AWS documents it, on top of moto 5.2.5's partial s3vectors.

moto stores buckets, indexes and vectors, but has no QueryVectors, UpdateIndexMode,
UpdateMetadataConfiguration or PutVectorBucketDefaultIndexMode, ignores an index's metadata
configuration, returns no ``indexArn`` from CreateIndex, refuses dimension 4,096 and enforces
none of the per-request and per-vector limits. The app's S3 Vectors adapter runs unchanged
against AWS and against the local stack, so the local stack must answer as AWS would:
:func:`install` routes the missing operations to moto's s3vectors handler and replaces the
index and vector operations with ones that follow the botocore 1.44.5 service model and the
S3 User Guide (limits, metadata filtering, index modes, full-text and hybrid search).

The state kept per index is in :mod:`.s3vectors_store`, filters in :mod:`.s3vectors_filters`,
BM25 in :mod:`.s3vectors_text` and QueryVectors in :mod:`.s3vectors_query`.
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections.abc import Callable
from typing import Any

from moto.s3vectors.exceptions import ValidationError

from . import s3vectors_store as store
from .s3vectors_query import query
from .s3vectors_store import (
    CLASSIC,
    CLASSIC_CUTOFF,
    ENHANCED,
    INDEX_MODES,
    LANGUAGES,
    MAX_DELETE_KEYS,
    MAX_DIMENSION,
    MAX_GET_KEYS,
    MAX_METADATA_KEY_CHARS,
    MAX_NON_FILTERABLE_KEYS,
    MAX_TEXT_SEARCH_KEYS,
    ConflictException,
    IndexState,
    TextSearchConfig,
    enum_param,
    int_param,
    invalid,
    page_position,
    page_token,
)

Response = tuple[int, dict[str, str], str]
MAX_LIST_VECTORS = 1000
DEFAULT_LIST_VECTORS = 500
MAX_SEGMENTS = 16
MAX_LIST_INDEXES = 500
# Operations moto's urls.py does not route; moto's own handler serves them once routed.
NEW_OPERATIONS = ("QueryVectors", "UpdateIndexMode", "UpdateMetadataConfiguration", "PutVectorBucketDefaultIndexMode")

_installed = False


def install() -> None:
    """Route and replace moto's s3vectors operations; call before moto serves a request."""
    global _installed
    if _installed:
        return
    from moto.core.utils import camelcase_to_underscores
    from moto.s3vectors import urls
    from moto.s3vectors.responses import S3VectorsResponse

    for operation in NEW_OPERATIONS:
        urls.url_paths.setdefault("{0}/" + operation + "$", S3VectorsResponse.dispatch)
    original_create_bucket = S3VectorsResponse.create_vector_bucket
    original_parse = S3VectorsResponse.parse_parameters

    def parse_parameters(self: Any, request: Any) -> None:
        # moto's model-driven parser walks every float of a 500 x 4,096 PutVectors; these
        # operations' bodies are exactly their input shape, so plain JSON is the same and fast.
        if self._get_action() in _HANDLERS:
            self.params = json.loads(request.data or b"{}")
        else:
            original_parse(self, request)

    def create_vector_bucket(self: Any) -> Response:
        original_create_bucket(self)
        bucket = self.s3vectors_backend.get_vector_bucket(vector_bucket_name=self._get_param("vectorBucketName"))
        bucket.creation_time = store.now()
        bucket.default_index_mode = CLASSIC if _predates_enhanced(bucket) else ENHANCED
        return _json({"vectorBucketArn": bucket.vector_bucket_arn})

    S3VectorsResponse.parse_parameters = parse_parameters  # type: ignore[method-assign]
    S3VectorsResponse.create_vector_bucket = create_vector_bucket  # type: ignore[method-assign,assignment]
    for action, handler in _HANDLERS.items():
        setattr(S3VectorsResponse, camelcase_to_underscores(action), handler)  # the name moto calls
    _installed = True


def _json(body: dict[str, Any]) -> Response:
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


def _index(self: Any) -> tuple[Any, IndexState]:
    params = self.params
    arn, name, bucket = params.get("indexArn"), params.get("indexName"), params.get("vectorBucketName")
    self._validate_index_params(arn, name, bucket)
    index = self.s3vectors_backend.get_index(bucket, name, arn)
    return index, index.emulator_state  # CreateIndex below sets it on every index


def _bucket(self: Any) -> Any:
    name, arn = self.params.get("vectorBucketName"), self.params.get("vectorBucketArn")
    if name and arn:
        raise ValidationError("Must specify either vectorBucketName or vectorBucketArn but not both")
    return self.s3vectors_backend.get_vector_bucket(vector_bucket_name=name, vector_bucket_arn=arn)


def _predates_enhanced(bucket: Any) -> bool:
    """CLASSIC is allowed only in buckets created before September 30, 2026 (install()'s
    CreateVectorBucket records when each bucket was)."""
    return bucket.creation_time < CLASSIC_CUTOFF


def _check_mode_allowed(mode: str, bucket: Any, what: str) -> None:
    """CLASSIC only in a bucket from before the cutoff; ``what`` says what is refused."""
    if mode == CLASSIC and not _predates_enhanced(bucket):
        raise ValidationError(f"CLASSIC can {what} created before September 30, 2026")


def _keys_param(value: Any, path: str, limit: int) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= limit:
        raise invalid(path, f"Member must have length between 1 and {limit}, inclusive")
    if not all(isinstance(key, str) and 1 <= len(key) <= store.MAX_KEY_CHARS for key in value):
        raise invalid(path, f"Member must contain keys of length between 1 and {store.MAX_KEY_CHARS}, inclusive")
    return value


def _text_configs(entries: Any, path: str) -> list[TextSearchConfig]:
    if not isinstance(entries, list) or len(entries) > MAX_TEXT_SEARCH_KEYS:
        raise invalid(path, f"Member must have length less than or equal to {MAX_TEXT_SEARCH_KEYS}")
    configs: list[TextSearchConfig] = []
    for entry in entries:
        key = entry.get("metadataKey") if isinstance(entry, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            raise invalid(f"{path}/metadataKey", f"Member must have length between 1 and {MAX_METADATA_KEY_CHARS}")
        language = entry.get("language")
        if language is not None:
            enum_param(language, f"{path}/language", LANGUAGES)
        if any(config.metadata_key == key for config in configs):
            raise ValidationError(f"Metadata key '{key}' has more than one text search configuration")
        configs.append(TextSearchConfig(key, language))
    return configs


def _index_json(index: Any, state: IndexState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "vectorBucketName": index.vectorBucketName,
        "indexName": index.index_name,
        "indexArn": index.index_arn,
        "creationTime": state.creation_time.timestamp(),
        "dataType": index.data_type,
        "dimension": state.dimension,
        "distanceMetric": state.metric,
        "indexMode": state.mode,
    }
    configuration = state.metadata_configuration()
    if configuration:
        out["metadataConfiguration"] = configuration
    if state.encryption:
        out["encryptionConfiguration"] = state.encryption
    return out


def create_index(self: Any) -> Response:
    params = self.params
    name = params.get("indexName")
    if not isinstance(name, str) or not 3 <= len(name) <= 63:
        raise invalid("/indexName", "Member must have length between 3 and 63, inclusive")
    data_type = enum_param(params.get("dataType"), "/dataType", ("float32",))
    dimension = int_param(params.get("dimension"), "/dimension", 1, MAX_DIMENSION)
    metric = enum_param(params.get("distanceMetric"), "/distanceMetric", ("euclidean", "cosine"))
    configuration = params.get("metadataConfiguration") or {}
    non_filterable = configuration.get("nonFilterableMetadataKeys") or []
    if not isinstance(non_filterable, list) or len(non_filterable) > MAX_NON_FILTERABLE_KEYS:
        raise invalid(
            "/metadataConfiguration/nonFilterableMetadataKeys",
            f"Member must have length less than or equal to {MAX_NON_FILTERABLE_KEYS}",
        )
    if not all(isinstance(k, str) and 1 <= len(k) <= MAX_METADATA_KEY_CHARS for k in non_filterable):
        raise invalid(
            "/metadataConfiguration/nonFilterableMetadataKeys",
            f"Member must have length between 1 and {MAX_METADATA_KEY_CHARS}",
        )
    texts = _text_configs(
        configuration.get("textSearchConfigurations") or [], "/metadataConfiguration/textSearchConfigurations"
    )
    bucket = _bucket(self)
    if any(index.index_name == name for index in bucket.indexes.values()):
        raise ConflictException("A vector index with the specified name already exists")
    mode = bucket.default_index_mode  # install()'s CreateVectorBucket sets it on every bucket
    if texts and mode != ENHANCED:
        raise ValidationError("Text search configurations require a vector index in ENHANCED mode")
    self.s3vectors_backend.create_index(
        vector_bucket_name=bucket.vector_bucket_name,
        vector_bucket_arn=None,
        index_name=name,
        data_type=data_type,
        dimension=dimension,
        distance_metric=metric,
        tags=params.get("tags"),
    )
    index = next(index for index in bucket.indexes.values() if index.index_name == name)
    index.emulator_state = IndexState(
        dimension,
        metric,
        mode,
        store.now(),
        tuple(dict.fromkeys(non_filterable)),
        {config.metadata_key: config for config in texts},
        params.get("encryptionConfiguration") or bucket.encryption_configuration,
    )
    return _json({"indexArn": index.index_arn})


def get_index(self: Any) -> Response:
    index, state = _index(self)
    return _json({"index": _index_json(index, state)})


def list_indexes(self: Any) -> Response:
    bucket = _bucket(self)
    limit = int_param(self.params.get("maxResults"), "/maxResults", 1, MAX_LIST_INDEXES, MAX_LIST_INDEXES)
    prefix = self.params.get("prefix") or ""
    after = page_position(self.params["nextToken"]) if self.params.get("nextToken") else None
    names = sorted(
        (index.index_name, index)
        for index in bucket.indexes.values()
        if index.index_name.startswith(prefix) and (after is None or index.index_name > after)
    )
    page = names[:limit]
    body: dict[str, Any] = {
        "indexes": [
            {
                "vectorBucketName": index.vectorBucketName,
                "indexName": name,
                "indexArn": index.index_arn,
                "creationTime": index.emulator_state.creation_time.timestamp(),
            }
            for name, index in page
        ]
    }
    if len(names) > limit:
        body["nextToken"] = page_token(page[-1][0])
    return _json(body)


def update_index_mode(self: Any) -> Response:
    mode = enum_param(self.params.get("indexMode"), "/indexMode", INDEX_MODES)
    index, state = _index(self)
    bucket = self.s3vectors_backend.get_vector_bucket(vector_bucket_name=index.vectorBucketName)
    _check_mode_allowed(mode, bucket, "be set only for a vector index in a vector bucket")
    with state.lock:
        state.mode = mode
    return _json({})


def put_vector_bucket_default_index_mode(self: Any) -> Response:
    mode = enum_param(self.params.get("defaultIndexMode"), "/defaultIndexMode", INDEX_MODES)
    bucket = _bucket(self)
    _check_mode_allowed(mode, bucket, "be the default only in a vector bucket")
    bucket.default_index_mode = mode
    return _json({})


def update_metadata_configuration(self: Any) -> Response:
    add, delete = self.params.get("add"), self.params.get("delete")
    if (add is None) == (delete is None):
        raise ValidationError("Specify either add or delete, but not both")
    if not isinstance(add if add is not None else delete, dict):
        raise invalid("/add" if add is not None else "/delete", "Member must be a structure")
    index, state = _index(self)
    with state.lock:
        if state.mode != ENHANCED:
            raise ValidationError("UpdateMetadataConfiguration requires a vector index in ENHANCED mode")
        if add is not None:
            configs = _text_configs(add.get("textSearchConfigurations") or [], "/add/textSearchConfigurations")
            for config in configs:
                if config.metadata_key in state.text_search:
                    raise ConflictException(
                        f"Metadata key '{config.metadata_key}' already has a text search configuration"
                    )
            if len(state.text_search) + len(configs) > MAX_TEXT_SEARCH_KEYS:
                raise ValidationError(f"An index can have at most {MAX_TEXT_SEARCH_KEYS} text search configurations")
            state.text_search.update((config.metadata_key, config) for config in configs)
        else:
            entries = delete.get("textSearchConfigurations")
            if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_TEXT_SEARCH_KEYS:
                raise invalid(
                    "/delete/textSearchConfigurations",
                    f"Member must have length between 1 and {MAX_TEXT_SEARCH_KEYS}, inclusive",
                )
            keys = [str(entry.get("metadataKey")) if isinstance(entry, dict) else "" for entry in entries]
            for key in keys:
                if key not in state.text_search:
                    raise ValidationError(f"Metadata key '{key}' has no text search configuration")
            for key in keys:
                del state.text_search[key]
    return _json({"indexArn": index.index_arn})


def put_vectors(self: Any) -> Response:
    _, state = _index(self)
    vectors = self.params.get("vectors")
    if not isinstance(vectors, list):
        raise invalid("/vectors", "Member must not be null")
    state.put(vectors)
    return _json({})


def _vector_json(key: str, record: store.Record, data: bool, metadata: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key}
    if data:
        out["data"] = {"float32": record.array.tolist()}
    if metadata:
        out["metadata"] = record.metadata
    return out


def get_vectors(self: Any) -> Response:
    _, state = _index(self)
    keys = _keys_param(self.params.get("keys"), "/keys", MAX_GET_KEYS)
    data, metadata = bool(self.params.get("returnData")), bool(self.params.get("returnMetadata"))
    with state.lock:
        found = [(key, state.records[key]) for key in dict.fromkeys(keys) if key in state.records]
    return _json({"vectors": [_vector_json(key, record, data, metadata) for key, record in found]})


def list_vectors(self: Any) -> Response:
    _, state = _index(self)
    params = self.params
    limit = int_param(params.get("maxResults"), "/maxResults", 1, MAX_LIST_VECTORS, DEFAULT_LIST_VECTORS)
    count, segment = params.get("segmentCount"), params.get("segmentIndex")
    if (count is None) != (segment is None):
        raise ValidationError("segmentCount and segmentIndex must be specified together")
    if count is not None:
        count = int_param(count, "/segmentCount", 1, MAX_SEGMENTS)
        segment = int_param(segment, "/segmentIndex", 0, MAX_SEGMENTS - 1)
        if segment >= count:
            raise ValidationError("segmentIndex must be less than segmentCount")
    after = None
    if params.get("nextToken"):
        position = page_position(params["nextToken"])
        if not isinstance(position, dict) or position.get("segment") != [count, segment]:
            raise ValidationError("The provided nextToken is not valid for this request")
        after = position.get("after")
    data, metadata = bool(params.get("returnData")), bool(params.get("returnMetadata"))
    with state.lock:
        ordered: list[str] = state.cached("sorted-keys", lambda: sorted(state.records))
        start = 0 if after is None else bisect.bisect_right(ordered, after)
        page: list[tuple[str, store.Record]] = []
        more = False
        for key in ordered[start:]:
            if count is not None and zlib.crc32(key.encode()) % count != segment:
                continue
            if len(page) == limit:
                more = True
                break
            page.append((key, state.records[key]))
    body: dict[str, Any] = {"vectors": [_vector_json(key, record, data, metadata) for key, record in page]}
    if more:
        body["nextToken"] = page_token({"after": page[-1][0], "segment": [count, segment]})
    return _json(body)


def delete_vectors(self: Any) -> Response:
    _, state = _index(self)
    state.delete(_keys_param(self.params.get("keys"), "/keys", MAX_DELETE_KEYS))
    return _json({})


def query_vectors(self: Any) -> Response:
    index, state = _index(self)
    return _json(query(state, index.index_arn, self.params))


_HANDLERS: dict[str, Callable[[Any], Response]] = {
    "CreateIndex": create_index,
    "GetIndex": get_index,
    "ListIndexes": list_indexes,
    "UpdateIndexMode": update_index_mode,
    "PutVectorBucketDefaultIndexMode": put_vector_bucket_default_index_mode,
    "UpdateMetadataConfiguration": update_metadata_configuration,
    "PutVectors": put_vectors,
    "GetVectors": get_vectors,
    "ListVectors": list_vectors,
    "DeleteVectors": delete_vectors,
    "QueryVectors": query_vectors,
}
