"""The app's S3 Vectors adapter (assistants_core.vectors) against the local stack's emulator.

Everything goes through boto3's ``s3vectors`` client over HTTP to moto in server mode with the
emulator installed, with the client settings the functions use. Expected values come from what
AWS documents (request limits, index modes, text search set-up, filter operators), from numpy
(cosine similarity) and from the formulas AWS names (Lucene's BM25, reciprocal rank fusion with
k = 60), never from the emulator or the adapter themselves.

AWS does not say whether ``$ne``/``$nin`` match a vector that lacks the key. The emulator takes
the MongoDB reading its syntax follows (they are the negations of ``$eq``/``$in``, so they do),
and the hand evaluation of OpenAI filters here takes the same reading.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from assistants_core.config import boto_config
from assistants_core.ids import new_id
from assistants_core.types.vector_store import MAX_ATTRIBUTES, MAX_ATTRIBUTES_BYTES, Filter, VectorStoreSearchParams
from assistants_core.vectors import ChunkRecord, Hit, S3VectorsIndex, Scope, attribute_filter, chunk_key, scoped_filter
from assistants_core.vectors.layout import ATTRIBUTE_PREFIX, NON_FILTERABLE_KEYS, TEXT_KEY
from assistants_core.vectors.s3vectors import GET_BATCH, MAX_TOP_K, PUT_BATCH
from local.emulator import s3vectors_store
from tests.harness.ranking import cosine_similarity, lucene_bm25

ROOT = Path(__file__).resolve().parents[1]
DIM = 8
INDEX = "chunks"
TENANT, STORE = "tenant-1", "vs_store"


# ---------------------------------------------------------------- the emulator and a client


class Recorder:
    """Every call a client makes: operation name and parameters, as the adapter passed them."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.s3vectors", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def ops(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture(scope="module", name="client")
def client_fixture(moto_endpoint: str) -> Any:
    config = boto_config().merge(Config(retries={"max_attempts": 1}))  # the functions' settings
    return boto3.client(
        "s3vectors",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


@pytest.fixture(scope="module", name="recorder")
def recorder_fixture(client: Any) -> Recorder:
    return Recorder(client)


@pytest.fixture(name="calls")
def calls_fixture(recorder: Recorder) -> Recorder:
    recorder.calls.clear()
    return recorder


def new_index(client: Any, *, classic: bool = False, text_search: bool = False) -> S3VectorsIndex:
    """An index as template.yaml declares it, in a new bucket (one created before September 30,
    2026 with ``classic``, whose indexes are CLASSIC); with ``text_search`` the ingest function
    has turned full-text search on."""
    bucket = f"b{uuid.uuid4().hex[:12]}"
    if classic:
        original = s3vectors_store.now
        s3vectors_store.now = lambda: datetime(2026, 3, 1, tzinfo=UTC)
        try:
            client.create_vector_bucket(vectorBucketName=bucket)
        finally:
            s3vectors_store.now = original
    else:
        client.create_vector_bucket(vectorBucketName=bucket)
    client.create_index(
        vectorBucketName=bucket,
        indexName=INDEX,
        dataType="float32",
        dimension=DIM,
        distanceMetric="cosine",
        metadataConfiguration={"nonFilterableMetadataKeys": list(NON_FILTERABLE_KEYS)},
    )
    index = S3VectorsIndex(INDEX, bucket=bucket, client=client)
    if text_search:
        index.text_search_ready(enable=True)
    return index


def names(index: S3VectorsIndex) -> dict[str, str]:
    return {"vectorBucketName": index.bucket, "indexName": index.index}


def vectors(count: int, seed: int) -> np.ndarray:
    """Deterministic float32 vectors (what S3 Vectors stores and returns)."""
    return np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)


def chunk(
    number: int,
    vector: np.ndarray | list[float],
    *,
    text: str = "some text",
    tenant: str = TENANT,
    store: str = STORE,
    file_id: str = "file-1",
    attributes: dict[str, Any] | None = None,
) -> ChunkRecord:
    return ChunkRecord(
        tenant=tenant,
        vector_store_id=store,
        file_id=file_id,
        chunk=number,
        file_name=f"{file_id}.txt",
        text=text,
        vector=[float(x) for x in vector],
        attributes=attributes or {},
    )


def all_keys(client: Any, index: S3VectorsIndex) -> list[str]:
    keys: list[str] = []
    page = client.list_vectors(**names(index), maxResults=1000)
    keys += [v["key"] for v in page["vectors"]]
    while "nextToken" in page:
        page = client.list_vectors(**names(index), maxResults=1000, nextToken=page["nextToken"])
        keys += [v["key"] for v in page["vectors"]]
    return keys


def error_code(call: Callable[..., Any], **kwargs: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return str(info.value.response["Error"]["Code"])


class Proxy:
    """A client whose named methods are replaced (to show the adapter what AWS may answer)."""

    def __init__(self, client: Any, **overrides: Callable[..., Any]) -> None:
        self._client = client
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name) or getattr(self._client, name)


def parse_filter(condition: dict[str, Any]) -> Filter:
    """An OpenAI attribute filter as the API parses it (the search endpoint's ``filters``)."""
    parsed = VectorStoreSearchParams.model_validate({"query": "q", "filters": condition}).filters
    assert parsed is not None
    return parsed


# ---------------------------------------------------------------- text search set-up


def test_template_declares_the_layout_non_filterable_keys() -> None:
    template = (ROOT / "template.yaml").read_text()
    declared = re.search(r"NonFilterableMetadataKeys: \[([^\]]*)\]", template)
    assert declared is not None
    assert tuple(k.strip() for k in declared.group(1).split(",")) == NON_FILTERABLE_KEYS == ("text", "file_name")


@pytest.mark.parametrize("classic", [False, True], ids=["enhanced", "classic"])
def test_a_reader_gets_false_and_changes_nothing(client: Any, calls: Recorder, classic: bool) -> None:
    index = new_index(client, classic=classic)
    before = client.get_index(**names(index))["index"]
    assert before["indexMode"] == ("CLASSIC" if classic else "ENHANCED")
    calls.calls.clear()

    assert index.text_search_ready() is False
    assert index.text_search_ready(enable=False) is False
    assert calls.ops() == ["GetIndex", "GetIndex"]  # not cached: a reader must notice when it turns on
    after = client.get_index(**names(index))["index"]
    assert after == before
    assert after["metadataConfiguration"] == {"nonFilterableMetadataKeys": ["text", "file_name"]}


@pytest.mark.parametrize("classic", [False, True], ids=["enhanced", "classic"])
def test_the_writer_turns_text_search_on_then_readers_get_true_and_cache_it(
    client: Any, calls: Recorder, classic: bool
) -> None:
    writer = new_index(client, classic=classic)
    calls.calls.clear()

    assert writer.text_search_ready(enable=True) is False  # just configured: not yet known to be serving
    mode_change = ["UpdateIndexMode"] if classic else []  # CLASSIC has no text search: ENHANCED first
    assert calls.ops() == ["GetIndex", *mode_change, "UpdateMetadataConfiguration"]
    if classic:
        assert calls.params("UpdateIndexMode")[0]["indexMode"] == "ENHANCED"
    assert calls.params("UpdateMetadataConfiguration")[0]["add"] == {
        "textSearchConfigurations": [{"metadataKey": TEXT_KEY}]
    }
    got = client.get_index(**names(writer))["index"]
    assert got["indexMode"] == "ENHANCED"
    assert got["metadataConfiguration"] == {
        "nonFilterableMetadataKeys": ["text", "file_name"],
        "textSearchConfigurations": [{"metadataKey": "text", "status": "ACTIVE"}],
    }

    reader = S3VectorsIndex(writer.index, bucket=writer.bucket, client=client)
    calls.calls.clear()
    assert reader.text_search_ready() is True
    assert calls.ops() == ["GetIndex"]
    assert [reader.text_search_ready() for _ in range(3)] == [True, True, True]
    assert calls.ops() == ["GetIndex"]  # cached by the handle

    calls.calls.clear()
    assert writer.text_search_ready(enable=True) is True  # already on: nothing to change
    assert writer.text_search_ready(enable=True) is True
    assert calls.ops() == ["GetIndex"]


def test_a_text_search_still_building_is_not_ready(client: Any, calls: Recorder) -> None:
    writer = new_index(client, text_search=True)
    status = {"now": "BUILDING"}  # AnalyzerStatus: ACTIVE | BUILDING (backfilling, not serving)

    def get_index(**kwargs: Any) -> dict[str, Any]:
        response = client.get_index(**kwargs)
        for configuration in response["index"]["metadataConfiguration"]["textSearchConfigurations"]:
            configuration["status"] = status["now"]
        return response

    proxy = Proxy(client, get_index=get_index)
    reader = S3VectorsIndex(writer.index, bucket=writer.bucket, client=proxy)
    other_writer = S3VectorsIndex(writer.index, bucket=writer.bucket, client=proxy)
    calls.calls.clear()
    assert reader.text_search_ready() is False
    assert other_writer.text_search_ready(enable=True) is False
    assert reader.text_search_ready() is False
    assert calls.ops() == ["GetIndex"] * 3  # configured already: no update; not ready: not cached
    status["now"] = "ACTIVE"
    assert reader.text_search_ready() is True
    assert other_writer.text_search_ready(enable=True) is True


def test_two_writers_racing_to_turn_it_on_both_succeed(client: Any, calls: Recorder) -> None:
    """Two ingest functions start on a fresh index at once: both read the index before either
    configures it, so the second UpdateMetadataConfiguration meets a ConflictException."""
    first = new_index(client)
    stale = client.get_index(**names(first))
    second = S3VectorsIndex(first.index, bucket=first.bucket, client=Proxy(client, get_index=lambda **_: stale))
    assert first.text_search_ready(enable=True) is False
    calls.calls.clear()
    assert second.text_search_ready(enable=True) is False
    assert calls.ops() == ["UpdateMetadataConfiguration"]
    assert S3VectorsIndex(first.index, bucket=first.bucket, client=client).text_search_ready() is True


# ---------------------------------------------------------------- batching


def test_put_get_and_delete_in_batches_aws_accepts(client: Any, calls: Recorder) -> None:
    assert (PUT_BATCH, GET_BATCH) == (500, 100)
    index = new_index(client)
    data = vectors(1200, seed=11)
    records = [chunk(i, data[i], text=f"chunk {i}", file_id=f"file-{i % 3}") for i in range(1200)]
    # AWS (and the emulator) refuse a request with more: the batches are needed.
    too_many = [{"key": r.key, "data": {"float32": r.vector}} for r in records[:501]]
    assert error_code(client.put_vectors, **names(index), vectors=too_many) == "ValidationException"
    assert error_code(client.get_vectors, **names(index), keys=[r.key for r in records[:101]]) == (
        "ValidationException"
    )
    assert error_code(client.delete_vectors, **names(index), keys=[r.key for r in records[:501]]) == (
        "ValidationException"
    )

    calls.calls.clear()
    index.put(iter(records))  # any iterable, as the ingest function passes a generator
    assert [len(p["vectors"]) for p in calls.params("PutVectors")] == [500, 500, 200]
    assert sorted(all_keys(client, index)) == sorted(r.key for r in records)

    wanted = records[100:350]
    calls.calls.clear()
    got = index.get([r.key for r in wanted])
    assert [len(p["keys"]) for p in calls.params("GetVectors")] == [100, 100, 50]
    assert all(p["returnData"] and p["returnMetadata"] for p in calls.params("GetVectors"))
    assert {v["key"]: (v["data"]["float32"], v["metadata"]) for v in got} == {
        r.key: (r.vector, r.metadata()) for r in wanted
    }
    assert index.get([records[0].key, "vs_store/file-9/9"]) == [
        {"key": records[0].key, "data": {"float32": records[0].vector}, "metadata": records[0].metadata()}
    ]  # keys that do not exist are left out

    calls.calls.clear()
    index.delete([r.key for r in records])
    assert [len(p["keys"]) for p in calls.params("DeleteVectors")] == [500, 500, 200]
    assert all_keys(client, index) == []
    assert index.get([r.key for r in records[:10]]) == []


# ---------------------------------------------------------------- metadata


def test_every_chunk_carries_the_documented_metadata(client: Any) -> None:
    index = new_index(client, text_search=True)
    attributes: dict[str, Any] = {"author": "Ada", "year": 2021.0, "draft": True}
    record = chunk(7, vectors(1, seed=3)[0], text="the chunk text", file_id="file-abc", attributes=attributes)
    assert record.key == chunk_key(STORE, "file-abc", 7) == "vs_store/file-abc/7"
    index.put([record])

    stored = client.get_vectors(**names(index), keys=[record.key], returnData=True, returnMetadata=True)["vectors"]
    assert stored == [
        {
            "key": "vs_store/file-abc/7",
            "data": {"float32": record.vector},
            "metadata": {
                "tenant": TENANT,
                "vector_store_id": STORE,
                "file_id": "file-abc",
                "chunk": 7,
                "text": "the chunk text",
                "file_name": "file-abc.txt",
                "attr_author": "Ada",
                "attr_year": 2021.0,
                "attr_draft": True,
            },
        }
    ]
    vector = {"float32": record.vector}
    for key, value in [("tenant", TENANT), ("vector_store_id", STORE), ("file_id", "file-abc"), ("chunk", 7)] + [
        (ATTRIBUTE_PREFIX + k, v) for k, v in attributes.items()
    ]:
        found = client.query_vectors(**names(index), topK=5, queryVector=vector, filter={key: {"$eq": value}})
        assert [v["key"] for v in found["vectors"]] == [record.key], key
    for key, value in [("text", "the chunk text"), ("file_name", "file-abc.txt")]:
        refused = error_code(client.query_vectors, **names(index), topK=5, queryVector=vector, filter={key: value})
        assert refused == "ValidationException", key

    hits = index.query(Scope(TENANT, (STORE,)), vector=record.vector, text=None, top_k=5, mode="vector")
    assert len(hits) == 1
    assert hits[0] == Hit(
        key="vs_store/file-abc/7",
        vector_store_id=STORE,
        file_id="file-abc",
        chunk=7,
        file_name="file-abc.txt",
        text="the chunk text",
        attributes=attributes,
        score=hits[0].score,
        rank=hits[0].rank,
    )
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)


def test_the_largest_attributes_the_api_accepts_fit_the_filterable_limit(client: Any) -> None:
    """16 attributes in 1,536 bytes of JSON, the longest tenant id and OpenAI-length ids: S3
    Vectors allows 2 KB of filterable metadata a vector."""
    filler = (MAX_ATTRIBUTES_BYTES - 2 - MAX_ATTRIBUTES * len('"k00":"",')) // MAX_ATTRIBUTES + 1
    attributes: dict[str, Any] = {f"k{i:02d}": "x" * filler for i in range(MAX_ATTRIBUTES)}
    size = len(json.dumps(attributes, separators=(",", ":")))
    attributes["k00"] = "x" * (filler - (size - MAX_ATTRIBUTES_BYTES))
    assert len(json.dumps(attributes, separators=(",", ":"))) == MAX_ATTRIBUTES_BYTES
    index = new_index(client)
    record = chunk(
        99_999,
        vectors(1, seed=4)[0],
        tenant="t" * 64,
        store=new_id("vs"),
        file_id=new_id("file", "-"),
        text="x" * 20_000,
        attributes=attributes,
    )
    index.put([record])
    assert [v["metadata"] for v in index.get([record.key])] == [record.metadata()]


def test_rewrite_metadata_replaces_the_attributes_and_keeps_the_rest(client: Any, calls: Recorder) -> None:
    index = new_index(client)
    data = vectors(620, seed=5)
    old = {"author": "Ada", "year": 1843.0, "draft": True}
    changed = [chunk(i, data[i], text=f"text {i}", attributes=old) for i in range(610)]
    untouched = [chunk(i, data[610 + i], text=f"other {i}", file_id="file-2", attributes=old) for i in range(10)]
    index.put(changed + untouched)

    calls.calls.clear()
    new = {"attr_author": "Grace", "attr_reviewed": False}
    index.rewrite_metadata([r.key for r in changed] + ["vs_store/file-1/9999"], new, remove_prefix=ATTRIBUTE_PREFIX)
    assert [len(p["keys"]) for p in calls.params("GetVectors")] == [100] * 6 + [11]
    assert [len(p["vectors"]) for p in calls.params("PutVectors")] == [500, 110]  # the missing key is not made

    got = {v["key"]: v for v in index.get([r.key for r in changed + untouched] + ["vs_store/file-1/9999"])}
    assert len(got) == 620
    for record in changed:
        base = {k: v for k, v in record.metadata().items() if not k.startswith(ATTRIBUTE_PREFIX)}
        assert got[record.key] == {"key": record.key, "data": {"float32": record.vector}, "metadata": {**base, **new}}
    for record in untouched:
        assert got[record.key] == {"key": record.key, "data": {"float32": record.vector}, "metadata": record.metadata()}


# ---------------------------------------------------------------- scoping


def test_scoped_filter_pins_the_tenant_and_the_stores() -> None:
    assert scoped_filter("t", ["vs_a", "vs_b"]) == {
        "$and": [{"tenant": {"$eq": "t"}}, {"vector_store_id": {"$in": ["vs_a", "vs_b"]}}]
    }
    condition = parse_filter({"type": "eq", "key": "tenant", "value": "other"})
    assert scoped_filter("t", ["vs_a"], condition) == {
        "$and": [
            {"tenant": {"$eq": "t"}},
            {"vector_store_id": {"$in": ["vs_a"]}},
            {"attr_tenant": {"$eq": "other"}},
        ]
    }
    with pytest.raises(ValueError, match="at least one vector store"):
        scoped_filter("t", [])
    with pytest.raises(ValueError, match="at least one vector store"):
        scoped_filter("t", [], condition)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_tenants_never_see_each_others_chunks(client: Any, mode: Any) -> None:
    index = new_index(client, text_search=True)
    vector = vectors(1, seed=6)[0]
    text = "kiwi orchard harvest notes"
    a1 = chunk(0, vector, text=text, tenant="tenant-a", store="vs_shared", file_id="file-a1", attributes={"kind": "x"})
    b1 = chunk(0, vector, text=text, tenant="tenant-b", store="vs_shared", file_id="file-b1", attributes={"kind": "x"})
    a2 = chunk(0, vector, text=text, tenant="tenant-a", store="vs_other", file_id="file-a2", attributes={"kind": "y"})
    index.put([a1, b1, a2])

    def found(tenant: str, stores: list[str], condition: dict[str, Any] | None = None) -> set[str]:
        scope = Scope(tenant, tuple(stores), parse_filter(condition) if condition else None)
        hits = index.query(scope, vector=[float(x) for x in vector], text="kiwi", top_k=10, mode=mode)
        return {hit.key for hit in hits}

    assert found("tenant-a", ["vs_shared"]) == {a1.key}
    assert found("tenant-b", ["vs_shared"]) == {b1.key}
    assert found("tenant-a", ["vs_shared", "vs_other"]) == {a1.key, a2.key}
    assert found("tenant-b", ["vs_other"]) == set()
    assert found("tenant-c", ["vs_shared", "vs_other"]) == set()
    # An attribute filter cannot widen the scope, not even one naming "tenant".
    widen = {
        "type": "or",
        "filters": [{"type": "eq", "key": "tenant", "value": "tenant-b"}, {"type": "eq", "key": "kind", "value": "x"}],
    }
    assert found("tenant-a", ["vs_shared", "vs_other"], widen) == {a1.key}
    assert found("tenant-a", ["vs_shared", "vs_other"], {"type": "ne", "key": "kind", "value": "zzz"}) == {
        a1.key,
        a2.key,
    }


# ---------------------------------------------------------------- attribute filters

ATTRIBUTES: list[dict[str, Any]] = [
    {"genre": "drama", "year": 2019, "draft": True},
    {"genre": "comedy", "year": 2020, "draft": False},
    {"genre": "documentary", "year": 2021.5, "level": 1},
    {"genre": "drama", "level": True},
    {"genre": "2020", "year": 2020},
    {},
    {"genre": "Drama", "year": -3, "draft": False, "level": 2},
]


def _same(value: Any, target: Any) -> bool:
    """JSON equality: 1 == 1.0, but a boolean is not a number and "2020" is not 2020."""
    if isinstance(value, bool) or isinstance(target, bool):
        return isinstance(value, bool) and isinstance(target, bool) and value == target
    if isinstance(value, str) or isinstance(target, str):
        return isinstance(value, str) and isinstance(target, str) and value == target
    return float(value) == float(target)


def by_hand(attributes: dict[str, Any], condition: dict[str, Any]) -> bool:
    """An OpenAI attribute filter evaluated over one file's attributes."""
    kind = condition["type"]
    if kind in ("and", "or"):
        parts = [by_hand(attributes, part) for part in condition["filters"]]
        return all(parts) if kind == "and" else any(parts)
    present = condition["key"] in attributes
    value, target = attributes.get(condition["key"]), condition["value"]
    if kind in ("eq", "ne"):
        equal = present and _same(value, target)
        return equal if kind == "eq" else not equal
    if kind in ("in", "nin"):
        member = present and any(_same(value, t) for t in target)
        return member if kind == "in" else not member
    if not present or isinstance(value, bool | str):
        return False
    return {"gt": value > target, "gte": value >= target, "lt": value < target, "lte": value <= target}[kind]


def eq(key: str, value: Any, kind: str = "eq") -> dict[str, Any]:
    return {"type": kind, "key": key, "value": value}


FILTER_CASES: list[tuple[dict[str, Any], set[int]]] = [
    (eq("genre", "drama"), {0, 3}),
    (eq("year", 2020), {1, 4}),
    (eq("draft", True), {0}),
    (eq("draft", False), {1, 6}),
    (eq("level", 1), {2}),  # not the boolean true
    (eq("level", True), {3}),  # not the number 1
    (eq("genre", "2020"), {4}),
    (eq("genre", "drama", "ne"), {1, 2, 4, 5, 6}),
    (eq("draft", True, "ne"), {1, 2, 3, 4, 5, 6}),
    (eq("year", 2020, "ne"), {0, 2, 3, 5, 6}),
    (eq("year", 2019, "gt"), {1, 2, 4}),
    (eq("year", 2020, "gte"), {1, 2, 4}),
    (eq("year", 2020, "lt"), {0, 6}),
    (eq("year", 2019, "lte"), {0, 6}),
    (eq("year", -10, "gt"), {0, 1, 2, 4, 6}),
    (eq("level", 2, "lt"), {2}),  # a boolean is not compared as a number
    (eq("genre", 0, "gt"), set()),  # strings are not compared as numbers
    (eq("genre", ["comedy", "documentary"], "in"), {1, 2}),
    (eq("year", [2019, 2021.5], "in"), {0, 2}),
    (eq("genre", ["2020", 2020], "in"), {4}),
    (eq("genre", ["drama", "comedy"], "nin"), {2, 4, 5, 6}),
    (eq("year", [2020], "nin"), {0, 2, 3, 5, 6}),
    ({"type": "and", "filters": [eq("genre", "drama"), eq("year", 2000, "gt")]}, {0}),
    ({"type": "or", "filters": [eq("genre", "comedy"), eq("level", True)]}, {1, 3}),
    (
        {
            "type": "and",
            "filters": [
                {"type": "or", "filters": [eq("genre", "drama"), eq("genre", "comedy")]},
                eq("draft", True, "ne"),
            ],
        },
        {1, 3},
    ),
    (
        {
            "type": "or",
            "filters": [
                {"type": "and", "filters": [eq("year", 2020, "gte"), eq("year", 2021, "lt")]},
                {"type": "and", "filters": [eq("level", 1), {"type": "or", "filters": [eq("genre", "x")]}]},
                eq("draft", False),
            ],
        },
        {1, 4, 6},
    ),
]


@pytest.fixture(scope="module", name="attributed")
def attributed_fixture(client: Any) -> S3VectorsIndex:
    index = new_index(client)
    data = np.abs(vectors(len(ATTRIBUTES), seed=8)) + 0.1
    index.put(chunk(i, data[i], attributes=attributes) for i, attributes in enumerate(ATTRIBUTES))
    # The same chunks in another tenant's store of the same id and in another store: the scope
    # keeps them out. (Keys name the store and the file, not the tenant: ids are random, so two
    # tenants never share a file id.)
    others = [("tenant-2", STORE, "file-2"), (TENANT, "vs_2", "file-3")]
    for tenant, store, file_id in others:
        index.put(
            chunk(i, data[i], tenant=tenant, store=store, file_id=file_id, attributes=attributes)
            for i, attributes in enumerate(ATTRIBUTES)
        )
    assert len(all_keys(index.client, index)) == 3 * len(ATTRIBUTES)
    return index


@pytest.mark.parametrize(("condition", "expected"), FILTER_CASES, ids=[json.dumps(c[0]) for c in FILTER_CASES])
def test_attribute_filters_match_as_evaluated_by_hand(
    attributed: S3VectorsIndex, condition: dict[str, Any], expected: set[int]
) -> None:
    assert {i for i, attributes in enumerate(ATTRIBUTES) if by_hand(attributes, condition)} == expected
    scope = Scope(TENANT, (STORE,), parse_filter(condition))
    hits = attributed.query(scope, vector=[1.0] * DIM, text=None, top_k=50, mode="vector")
    assert sorted(hit.chunk for hit in hits) == sorted(expected)
    assert all(hit.vector_store_id == STORE and hit.attributes == ATTRIBUTES[hit.chunk] for hit in hits)


def test_attribute_filter_translation() -> None:
    condition = parse_filter(
        {
            "type": "or",
            "filters": [
                {"type": "and", "filters": [eq("year", 2020, "gte"), eq("genre", ["a", 1], "nin")]},
                eq("draft", True, "ne"),
            ],
        }
    )
    assert attribute_filter(condition) == {
        "$or": [
            {"$and": [{"attr_year": {"$gte": 2020.0}}, {"attr_genre": {"$nin": ["a", 1.0]}}]},
            {"attr_draft": {"$ne": True}},
        ]
    }
    for kind in ("eq", "ne", "gt", "gte", "lt", "lte"):
        assert attribute_filter(parse_filter(eq("k", 3, kind))) == {"attr_k": {f"${kind}": 3.0}}
    for kind in ("in", "nin"):
        assert attribute_filter(parse_filter(eq("k", ["v"], kind))) == {"attr_k": {f"${kind}": ["v"]}}


# ---------------------------------------------------------------- query modes and scores

CORPUS = [
    "banana bread recipe",
    "banana banana smoothie",
    "apple pie",
    "zephyr banana notes",
    "cherry tart",
    "banana split with cherry",
    "plain toast",
    "apple banana salad with honey and nuts",
    "lemon curd",
    "orange juice",
]


@pytest.fixture(scope="module", name="ranked")
def ranked_fixture(client: Any) -> tuple[S3VectorsIndex, np.ndarray]:
    index = new_index(client, text_search=True)
    data = vectors(len(CORPUS), seed=9)
    index.put(chunk(i, data[i], text=text) for i, text in enumerate(CORPUS))
    return index, data


def test_vector_mode_scores_are_cosine_similarities_best_first(
    ranked: tuple[S3VectorsIndex, np.ndarray], calls: Recorder
) -> None:
    index, data = ranked
    query = vectors(1, seed=10)[0]
    similarity = cosine_similarity(data, query)
    assert similarity.min() < 0 < similarity.max()  # the last scores clamp to 0
    order = np.argsort(-similarity, kind="stable")

    calls.calls.clear()
    hits = index.query(Scope(TENANT, (STORE,)), vector=query.tolist(), text="banana", top_k=10, mode="vector")
    assert calls.ops() == ["QueryVectors"]  # vector mode never asks about text search
    sent = calls.params("QueryVectors")[0]
    assert "queryTexts" not in sent and sent["topK"] == 10 and sent["queryVector"] == {"float32": query.tolist()}
    assert [hit.chunk for hit in hits] == order.tolist()
    expected = np.clip(similarity[order], 0.0, 1.0)
    assert expected[-1] == 0.0
    assert [hit.score for hit in hits] == pytest.approx(expected.tolist(), abs=1e-6)
    assert [hit.rank for hit in hits] == [hit.score for hit in hits]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert [hit.text for hit in hits] == [CORPUS[i] for i in order]


def test_keyword_mode_ranks_by_bm25_relative_to_the_best(
    ranked: tuple[S3VectorsIndex, np.ndarray], calls: Recorder
) -> None:
    index, _ = ranked
    expected = lucene_bm25({str(i): text for i, text in enumerate(CORPUS)}, "banana zephyr")
    order = sorted(expected, key=lambda k: -expected[k])
    assert order[0] == "3" and len(order) == 5  # the rare word's chunk first; only matches

    calls.calls.clear()
    hits = index.query(Scope(TENANT, (STORE,)), vector=None, text="Banana ZEPHYR", top_k=10, mode="keyword")
    sent = calls.params("QueryVectors")[0]
    assert "queryVector" not in sent and sent["queryTexts"] == [{"text": "Banana ZEPHYR", "metadataKey": "text"}]
    assert [str(hit.chunk) for hit in hits] == order
    assert [hit.rank for hit in hits] == pytest.approx([expected[k] for k in order], rel=1e-5)
    assert hits[0].score == 1.0
    assert [hit.score for hit in hits] == pytest.approx([expected[k] / expected[order[0]] for k in order], rel=1e-5)
    assert all(0 < hit.score < 1 for hit in hits[1:])


def test_hybrid_mode_scores_are_the_fused_score_over_its_best(
    ranked: tuple[S3VectorsIndex, np.ndarray], calls: Recorder
) -> None:
    index, data = ranked
    query = data[3] + np.float32(0.01)  # closest to chunk 3, which also ranks first by BM25
    similarity = cosine_similarity(data, query)
    vector_rank = {int(i): r for r, i in enumerate(np.argsort(-similarity, kind="stable"), start=1)}
    bm25 = lucene_bm25({str(i): text for i, text in enumerate(CORPUS)}, "banana zephyr")
    text_rank = {int(k): r for r, k in enumerate(sorted(bm25, key=lambda k: -bm25[k]), start=1)}
    assert vector_rank[3] == text_rank[3] == 1
    fused = {i: 1 / (60 + vector_rank[i]) + (1 / (60 + text_rank[i]) if i in text_rank else 0) for i in vector_rank}

    calls.calls.clear()
    hits = index.query(Scope(TENANT, (STORE,)), vector=query.tolist(), text="banana zephyr", top_k=20, mode="hybrid")
    sent = calls.params("QueryVectors")[0]
    assert sent["queryVector"] == {"float32": query.tolist()}
    assert sent["queryTexts"] == [{"text": "banana zephyr", "metadataKey": "text"}]
    assert sorted(hit.chunk for hit in hits) == list(range(len(CORPUS)))
    assert hits[0].chunk == 3 and hits[0].score == 1.0
    assert {hit.chunk: hit.rank for hit in hits} == pytest.approx(fused, rel=1e-9)
    assert {hit.chunk: hit.score for hit in hits} == pytest.approx({i: f / (2 / 61) for i, f in fused.items()})
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


@pytest.mark.parametrize("classic", [False, True], ids=["enhanced", "classic"])
@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_without_text_search_yet_queries_rank_by_vectors_alone(
    client: Any, calls: Recorder, classic: bool, mode: Any
) -> None:
    index = new_index(client, classic=classic)
    data = vectors(len(CORPUS), seed=12)
    index.put(chunk(i, data[i], text=text) for i, text in enumerate(CORPUS))
    query = vectors(1, seed=13)[0]
    similarity = cosine_similarity(data, query)
    order = np.argsort(-similarity, kind="stable")[:5]

    calls.calls.clear()
    hits = index.query(Scope(TENANT, (STORE,)), vector=query.tolist(), text="zephyr", top_k=5, mode=mode)
    assert calls.ops() == ["GetIndex", "QueryVectors"]
    assert "queryTexts" not in calls.params("QueryVectors")[0]  # a CLASSIC index would refuse them
    assert [hit.chunk for hit in hits] == order.tolist()
    assert [hit.score for hit in hits] == pytest.approx(np.clip(similarity[order], 0, 1).tolist(), abs=1e-6)
    with pytest.raises(ValueError, match="needs a query vector"):
        index.query(Scope(TENANT, (STORE,)), vector=None, text="zephyr", top_k=5, mode=mode)


def test_top_k_above_the_page_size_is_capped(client: Any, calls: Recorder) -> None:
    assert MAX_TOP_K == 100
    index = new_index(client)
    data = vectors(130, seed=14)
    index.put(chunk(i, data[i]) for i in range(130))
    query = vectors(1, seed=15)[0]
    order = np.argsort(-cosine_similarity(data, query), kind="stable")

    calls.calls.clear()
    hits = index.query(Scope(TENANT, (STORE,)), vector=query.tolist(), text=None, top_k=250, mode="vector")
    assert [p["topK"] for p in calls.params("QueryVectors")] == [100]
    assert [hit.chunk for hit in hits] == order[:100].tolist()
    hits = index.query(Scope(TENANT, (STORE,)), vector=query.tolist(), text=None, top_k=100, mode="vector")
    assert [hit.chunk for hit in hits] == order[:100].tolist()
    assert [p["topK"] for p in calls.params("QueryVectors")] == [100, 100]


def test_a_query_takes_a_scope_never_a_filter_of_its_own(client: Any) -> None:
    index = new_index(client)
    with pytest.raises(TypeError, match="Scope"):
        index.query({"tenant": {"$eq": TENANT}}, vector=[1.0] * DIM, text=None, top_k=5, mode="vector")  # type: ignore[arg-type]
