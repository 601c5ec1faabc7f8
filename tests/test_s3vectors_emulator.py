"""The S3 Vectors emulator (local.emulator.s3vectors) answers as AWS documents.

Everything goes through boto3's ``s3vectors`` client against moto in server mode, as the app's
adapter does. Expected results come from numpy and from the formulas AWS names (cosine distance,
Lucene's BM25, reciprocal rank fusion with k = 60), not from the emulator itself.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.emulator import s3vectors_store, s3vectors_text
from tests.harness.ranking import cosine_similarity, lucene_bm25

_CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module", name="s3v")
def client_fixture(moto_endpoint: str) -> Any:
    config = Config(retries={"max_attempts": 1})
    return boto3.client("s3vectors", endpoint_url=moto_endpoint, config=config, **_CREDENTIALS)


@pytest.fixture(scope="module", name="unchecked")
def unchecked_client_fixture(moto_endpoint: str) -> Any:
    """A client that sends what botocore would refuse (below a documented minimum), to reach the server."""
    config = Config(retries={"max_attempts": 1}, parameter_validation=False)
    return boto3.client("s3vectors", endpoint_url=moto_endpoint, config=config, **_CREDENTIALS)


@pytest.fixture(name="backdated")
def backdated_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets created from here on predate September 30, 2026: CLASSIC by default, CLASSIC allowed."""
    monkeypatch.setattr(s3vectors_store, "now", lambda: datetime(2026, 3, 1, tzinfo=UTC))


def bucket(s3v: Any) -> str:
    name = f"b{uuid.uuid4().hex[:12]}"
    s3v.create_vector_bucket(vectorBucketName=name)
    return name


def index(s3v: Any, dimension: int = 4, metric: str = "cosine", **extra: Any) -> dict[str, str]:
    """A new index in a new bucket; returns the kwargs that address it."""
    where = {"vectorBucketName": bucket(s3v), "indexName": "idx"}
    s3v.create_index(**where, dataType="float32", dimension=dimension, distanceMetric=metric, **extra)
    return where


def text_index(s3v: Any, dimension: int = 4, keys: tuple[str, ...] = ("body",)) -> dict[str, str]:
    configuration = {
        "nonFilterableMetadataKeys": ["body"],
        "textSearchConfigurations": [{"metadataKey": key} for key in keys],
    }
    return index(s3v, dimension, metadataConfiguration=configuration)


def error(call: Callable[..., Any], **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def invalid(call: Callable[..., Any], **kwargs: Any) -> None:
    assert error(call, **kwargs) == ("ValidationException", 400)


def put(s3v: Any, where: dict[str, str], rows: dict[str, tuple[list[float], dict[str, Any]]]) -> None:
    vectors = [{"key": k, "data": {"float32": v}, "metadata": m} for k, (v, m) in rows.items()]
    s3v.put_vectors(**where, vectors=vectors)


def keys_of(response: dict[str, Any]) -> list[str]:
    return [v["key"] for v in response["vectors"]]


# -- indexes, buckets and modes ---------------------------------------------------------------


def test_create_index_returns_arn_and_get_index_shows_the_configuration(s3v: Any) -> None:
    name = bucket(s3v)
    configuration = {
        "nonFilterableMetadataKeys": ["body", "source"],
        "textSearchConfigurations": [{"metadataKey": "body", "language": "en"}, {"metadataKey": "title"}],
    }
    created = s3v.create_index(
        vectorBucketName=name,
        indexName="docs",
        dataType="float32",
        dimension=4096,
        distanceMetric="euclidean",
        metadataConfiguration=configuration,
    )
    arn = f"arn:aws:s3vectors:us-east-1:123456789012:bucket/{name}/index/docs"
    assert created["indexArn"] == arn

    got = s3v.get_index(indexArn=arn)["index"]
    assert got["indexArn"] == arn and got["dimension"] == 4096 and got["distanceMetric"] == "euclidean"
    assert got["indexMode"] == "ENHANCED"
    assert isinstance(got["creationTime"], datetime)
    assert got["metadataConfiguration"] == {
        "nonFilterableMetadataKeys": ["body", "source"],
        "textSearchConfigurations": [
            {"metadataKey": "body", "language": "en", "status": "ACTIVE"},
            {"metadataKey": "title", "status": "ACTIVE"},
        ],
    }
    summaries = s3v.list_indexes(vectorBucketName=name)["indexes"]
    assert [(s["indexName"], s["indexArn"]) for s in summaries] == [("docs", arn)]
    assert "metadataConfiguration" not in summaries[0]  # IndexSummary has no such member


def test_create_index_limits(s3v: Any, unchecked: Any) -> None:
    name = bucket(s3v)
    spec = {"vectorBucketName": name, "dataType": "float32", "distanceMetric": "cosine"}
    invalid(s3v.create_index, **spec, indexName="big", dimension=4097)
    invalid(unchecked.create_index, **spec, indexName="zero", dimension=0)
    eleven = {"nonFilterableMetadataKeys": [f"k{i}" for i in range(11)]}
    invalid(s3v.create_index, **spec, indexName="keys", dimension=3, metadataConfiguration=eleven)
    twice = {"textSearchConfigurations": [{"metadataKey": "a"}, {"metadataKey": "a"}]}
    invalid(s3v.create_index, **spec, indexName="twice", dimension=3, metadataConfiguration=twice)
    s3v.create_index(**spec, indexName="taken", dimension=3)
    assert error(s3v.create_index, **spec, indexName="taken", dimension=3) == ("ConflictException", 409)
    assert [s["indexName"] for s in s3v.list_indexes(vectorBucketName=name)["indexes"]] == ["taken"]


def test_list_indexes_pages_and_prefix(s3v: Any) -> None:
    name = bucket(s3v)
    for i in range(5):
        s3v.create_index(
            vectorBucketName=name, indexName=f"idx-{i}", dataType="float32", dimension=2, distanceMetric="cosine"
        )
    first = s3v.list_indexes(vectorBucketName=name, maxResults=3)
    second = s3v.list_indexes(vectorBucketName=name, maxResults=3, nextToken=first["nextToken"])
    assert [s["indexName"] for s in first["indexes"] + second["indexes"]] == [f"idx-{i}" for i in range(5)]
    assert "nextToken" not in second
    assert [s["indexName"] for s in s3v.list_indexes(vectorBucketName=name, prefix="idx-3")["indexes"]] == ["idx-3"]


def test_new_buckets_are_enhanced_and_refuse_classic(s3v: Any) -> None:
    where = index(s3v)
    assert s3v.get_vector_bucket(vectorBucketName=where["vectorBucketName"])["vectorBucket"]["defaultIndexMode"] == (
        "ENHANCED"
    )
    invalid(s3v.update_index_mode, **where, indexMode="CLASSIC")
    invalid(
        s3v.put_vector_bucket_default_index_mode, vectorBucketName=where["vectorBucketName"], defaultIndexMode="CLASSIC"
    )
    s3v.update_index_mode(**where, indexMode="ENHANCED")
    assert s3v.get_index(**where)["index"]["indexMode"] == "ENHANCED"


@pytest.mark.usefixtures("backdated")
def test_buckets_from_before_the_cutoff_default_to_classic(s3v: Any) -> None:
    where = index(s3v)
    name = where["vectorBucketName"]
    assert s3v.get_vector_bucket(vectorBucketName=name)["vectorBucket"]["defaultIndexMode"] == "CLASSIC"
    assert s3v.get_index(**where)["index"]["indexMode"] == "CLASSIC"
    put(s3v, where, {"a": ([1, 0, 0, 0], {"body": "kiwi", "title": "alpha"})})
    # CLASSIC indexes have no full-text search, no $startsWith and no text configuration.
    invalid(s3v.query_vectors, **where, topK=1, queryTexts=[{"text": "kiwi", "metadataKey": "body"}])
    vector = {"float32": [1, 0, 0, 0]}
    invalid(s3v.query_vectors, **where, topK=1, queryVector=vector, filter={"title": {"$startsWith": "al"}})
    add = {"textSearchConfigurations": [{"metadataKey": "body"}]}
    invalid(s3v.update_metadata_configuration, **where, add=add)
    invalid(
        s3v.create_index,
        vectorBucketName=name,
        indexName="texts",
        dataType="float32",
        dimension=4,
        distanceMetric="cosine",
        metadataConfiguration=add,
    )
    # A query may ask for ENHANCED processing of a CLASSIC index.
    hit = s3v.query_vectors(
        **where, topK=1, queryVector=vector, filter={"title": {"$startsWith": "al"}}, queryMode="ENHANCED"
    )
    assert keys_of(hit) == ["a"]

    s3v.update_index_mode(**where, indexMode="ENHANCED")
    s3v.update_metadata_configuration(**where, add=add)
    assert keys_of(s3v.query_vectors(**where, topK=1, queryTexts=[{"text": "kiwi", "metadataKey": "body"}])) == ["a"]
    s3v.update_index_mode(**where, indexMode="CLASSIC")  # allowed: the bucket predates the cutoff

    s3v.put_vector_bucket_default_index_mode(vectorBucketName=name, defaultIndexMode="ENHANCED")
    s3v.create_index(vectorBucketName=name, indexName="newer", dataType="float32", dimension=4, distanceMetric="cosine")
    assert s3v.get_index(vectorBucketName=name, indexName="newer")["index"]["indexMode"] == "ENHANCED"
    assert s3v.get_index(**where)["index"]["indexMode"] == "CLASSIC"  # existing indexes keep their mode


def test_classic_query_mode_on_an_enhanced_index_is_refused(s3v: Any) -> None:
    where = index(s3v)
    put(s3v, where, {"a": ([1, 0, 0, 0], {})})
    invalid(s3v.query_vectors, **where, topK=1, queryVector={"float32": [1, 0, 0, 0]}, queryMode="CLASSIC")


@pytest.mark.usefixtures("backdated")
def test_enhanced_filters_before_the_search_classic_during_it(s3v: Any) -> None:
    rng = np.random.default_rng(7)
    rows = {f"v{i:02d}": (rng.standard_normal(4).tolist(), {"rare": i % 10 == 0}) for i in range(40)}
    query = {"float32": [1.0, 0.5, -0.2, 0.1]}
    classic = index(s3v)
    put(s3v, classic, rows)
    enhanced = index(s3v)
    s3v.update_index_mode(**enhanced, indexMode="ENHANCED")
    put(s3v, enhanced, rows)

    full = s3v.query_vectors(**enhanced, topK=4, queryVector=query, filter={"rare": True})
    assert len(full["vectors"]) == 4  # exactly the four vectors that match
    partial = s3v.query_vectors(**classic, topK=4, queryVector=query, filter={"rare": True})
    assert set(keys_of(partial)) < set(keys_of(full))


# -- vector search ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_in_order_with_exact_distances(s3v: Any, metric: str) -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((60, 8)).astype(np.float32)
    where = index(s3v, dimension=8, metric=metric)
    put(s3v, where, {f"k{i}": (row.tolist(), {"i": i}) for i, row in enumerate(data)})
    query = rng.standard_normal(8).astype(np.float32)

    got = s3v.query_vectors(**where, topK=10, queryVector={"float32": query.tolist()}, returnDistance=True)
    expected = 1 - cosine_similarity(data, query) if metric == "cosine" else np.linalg.norm(data - query, axis=1)
    order = np.argsort(expected, kind="stable")[:10]
    assert keys_of(got) == [f"k{i}" for i in order]
    assert [v["distance"] for v in got["vectors"]] == pytest.approx(expected[order].tolist(), rel=1e-5, abs=1e-6)
    assert got["distanceMetric"] == metric
    assert all(set(v) == {"key", "distance"} for v in got["vectors"])  # no metadata or scores unasked
    bare = s3v.query_vectors(**where, topK=3, queryVector={"float32": query.tolist()}, returnScores=True)
    assert all(set(v) == {"key"} for v in bare["vectors"])  # returnScores adds nothing to vector-only queries


def test_query_pages_up_to_top_k_from_one_snapshot(s3v: Any, unchecked: Any) -> None:
    rng = np.random.default_rng(2)
    data = rng.standard_normal((250, 4)).astype(np.float32)
    where = index(s3v, metric="euclidean")
    for start in (0, 125):
        put(s3v, where, {f"k{i}": (data[i].tolist(), {}) for i in range(start, start + 125)})
    query = {"float32": [0.0, 0.0, 0.0, 0.0]}
    expected = [f"k{i}" for i in np.argsort(np.linalg.norm(data, axis=1), kind="stable")]

    pages = [s3v.query_vectors(**where, topK=240, queryVector=query)]
    put(s3v, where, {"closest": ([0.0, 0.0, 0.0, 0.001], {})})  # written between pages: not in this query
    while "nextToken" in pages[-1]:
        pages.append(s3v.query_vectors(**where, topK=240, queryVector=query, nextToken=pages[-1]["nextToken"]))
    assert [len(p["vectors"]) for p in pages] == [100, 100, 40]
    assert [k for p in pages for k in keys_of(p)] == expected[:240]
    assert keys_of(s3v.query_vectors(**where, topK=1, queryVector=query)) == ["closest"]

    token = s3v.query_vectors(**where, topK=240, queryVector=query)["nextToken"]
    invalid(s3v.query_vectors, **where, topK=240, queryVector={"float32": [1.0, 0, 0, 0]}, nextToken=token)
    invalid(s3v.query_vectors, **where, topK=10_001, queryVector=query)
    invalid(unchecked.query_vectors, **where, topK=0, queryVector=query)


def test_query_vector_must_match_the_dimension(s3v: Any) -> None:
    where = index(s3v)
    put(s3v, where, {"a": ([1, 0, 0, 0], {})})
    invalid(s3v.query_vectors, **where, topK=1, queryVector={"float32": [1, 0, 0]})
    invalid(s3v.query_vectors, **where, topK=1)  # neither queryVector nor queryTexts


# -- filters ------------------------------------------------------------------------------------

FILTER_ROWS: dict[str, dict[str, Any]] = {
    "a": {"genre": "drama", "year": 2019, "tags": ["x", "y"], "ok": True, "title": "alpha"},
    "b": {"genre": "comedy", "year": 2020, "tags": ["y"], "ok": False, "title": "beta"},
    "c": {"genre": "documentary", "year": 2021.5, "tags": "z", "title": "alpine"},
    "d": {"genre": "drama", "year": 1, "ok": 1},
    "e": {},
}


@pytest.fixture(scope="module", name="filtered")
def filtered_fixture(s3v: Any) -> dict[str, str]:
    where = index(s3v)
    put(s3v, where, {k: ([1.0, i + 1.0, 0, 0], m) for i, (k, m) in enumerate(FILTER_ROWS.items())})
    return where


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"genre": "drama"}, "ad"),
        ({"genre": {"$eq": "drama"}}, "ad"),
        ({"tags": "y"}, "ab"),  # a list matches if any element does
        ({"tags": {"$eq": "z"}}, "c"),
        ({"genre": {"$ne": "drama"}}, "bce"),
        ({"tags": {"$ne": "y"}}, "cde"),
        ({"year": {"$gt": 2020}}, "c"),
        ({"year": {"$gte": 2020}}, "bc"),
        ({"year": {"$lt": 2020}}, "ad"),
        ({"year": {"$lte": 2019}}, "ad"),
        ({"year": {"$gte": 2019, "$lt": 2021}}, "ab"),
        ({"genre": {"$in": ["comedy", "documentary"]}}, "bc"),
        ({"tags": {"$in": ["x", "z"]}}, "ac"),
        ({"genre": {"$nin": ["drama"]}}, "bce"),
        ({"tags": {"$nin": ["y"]}}, "cde"),
        ({"ok": {"$exists": True}}, "abd"),
        ({"ok": {"$exists": False}}, "ce"),
        ({"ok": True}, "a"),  # a boolean is not the number 1
        ({"ok": 1}, "d"),
        ({"year": 1.0}, "d"),  # JSON numbers: 1 and 1.0 are equal
        ({"genre": "drama", "tags": "x"}, "a"),
        ({"$and": [{"genre": "drama"}, {"year": {"$gt": 100}}]}, "a"),
        ({"$or": [{"genre": "comedy"}, {"tags": "z"}]}, "bc"),
        ({"$or": [{"$and": [{"genre": "drama"}, {"ok": True}]}, {"year": {"$gt": 2021}}]}, "ac"),
        ({"title": {"$startsWith": "alp"}}, "ac"),
    ],
)
def test_filter_operators(s3v: Any, filtered: dict[str, str], condition: dict[str, Any], expected: str) -> None:
    got = s3v.query_vectors(**filtered, topK=10, queryVector={"float32": [1, 0, 0, 0]}, filter=condition)
    assert sorted(keys_of(got)) == list(expected)


@pytest.mark.parametrize(
    "condition",
    [
        {"genre": {"$regex": "dr"}},
        {"$not": {"genre": "drama"}},
        {"genre": {"$in": []}},
        {"year": {"$gt": "2019"}},
        {"ok": {"$exists": "yes"}},
        {"$or": []},
        {"genre": ["drama"]},
    ],
)
def test_malformed_filters_are_refused(s3v: Any, filtered: dict[str, str], condition: dict[str, Any]) -> None:
    invalid(s3v.query_vectors, **filtered, topK=1, queryVector={"float32": [1, 0, 0, 0]}, filter=condition)


def test_enhanced_indexes_take_at_most_100_filter_constraints(s3v: Any, filtered: dict[str, str]) -> None:
    vector = {"float32": [1, 0, 0, 0]}
    hundred = {"$or": [{"year": i} for i in range(99)] + [{"genre": "comedy"}]}
    assert keys_of(s3v.query_vectors(**filtered, topK=10, queryVector=vector, filter=hundred)) == ["b", "d"]
    hundred_and_one = {"$or": [{"year": i} for i in range(101)]}
    invalid(s3v.query_vectors, **filtered, topK=10, queryVector=vector, filter=hundred_and_one)


def test_filtering_on_a_non_filterable_key_is_refused_but_it_is_returned(s3v: Any) -> None:
    where = index(s3v, metadataConfiguration={"nonFilterableMetadataKeys": ["body"]})
    put(s3v, where, {"a": ([1, 0, 0, 0], {"body": "long text", "kind": "doc"})})
    vector = {"float32": [1, 0, 0, 0]}
    invalid(s3v.query_vectors, **where, topK=1, queryVector=vector, filter={"body": "long text"})
    invalid(s3v.query_vectors, **where, topK=1, queryVector=vector, filter={"$or": [{"kind": "x"}, {"body": "y"}]})
    got = s3v.query_vectors(**where, topK=1, queryVector=vector, filter={"kind": "doc"}, returnMetadata=True)
    assert got["vectors"][0]["metadata"] == {"body": "long text", "kind": "doc"}


# -- writes, reads and their limits -------------------------------------------------------------


def test_put_overwrites_and_get_returns_float32(s3v: Any) -> None:
    where = index(s3v, dimension=3)
    put(s3v, where, {"a": ([0.1, 0.2, 0.3], {"v": 1})})
    put(s3v, where, {"a": ([0.3, 0.2, 0.1], {"v": 2})})
    got = s3v.get_vectors(**where, keys=["a", "missing"], returnData=True, returnMetadata=True)["vectors"]
    assert got == [
        {"key": "a", "data": {"float32": [float(np.float32(x)) for x in (0.3, 0.2, 0.1)]}, "metadata": {"v": 2}}
    ]
    assert s3v.get_vectors(**where, keys=["a"])["vectors"] == [{"key": "a"}]


def test_put_vectors_limits(s3v: Any, unchecked: Any) -> None:
    cosine, euclidean = index(s3v, dimension=2), index(s3v, dimension=2, metric="euclidean")

    def vectors(count: int, **extra: Any) -> list[dict[str, Any]]:
        return [{"key": f"k{i}", "data": {"float32": [1.0, 2.0]}, **extra} for i in range(count)]

    s3v.put_vectors(**cosine, vectors=vectors(500))
    invalid(s3v.put_vectors, **cosine, vectors=vectors(501))
    invalid(unchecked.put_vectors, **cosine, vectors=[])
    invalid(s3v.put_vectors, **cosine, vectors=[{"key": "x" * 1025, "data": {"float32": [1.0, 2.0]}}])
    s3v.put_vectors(**cosine, vectors=[{"key": "x" * 1024, "data": {"float32": [1.0, 2.0]}}])
    invalid(unchecked.put_vectors, **cosine, vectors=[{"key": "", "data": {"float32": [1.0, 2.0]}}])
    invalid(s3v.put_vectors, **cosine, vectors=[{"key": "short", "data": {"float32": [1.0]}}])
    invalid(s3v.put_vectors, **cosine, vectors=[{"key": "nan", "data": {"float32": [math.nan, 1.0]}}])
    invalid(s3v.put_vectors, **cosine, vectors=[{"key": "zero", "data": {"float32": [0.0, 0.0]}}])
    s3v.put_vectors(**euclidean, vectors=[{"key": "zero", "data": {"float32": [0.0, 0.0]}}])
    # One bad vector rejects the whole request.
    batch = [{"key": "fine", "data": {"float32": [1.0, 2.0]}}, {"key": "bad", "data": {"float32": [1.0]}}]
    invalid(s3v.put_vectors, **euclidean, vectors=batch)
    assert s3v.get_vectors(**euclidean, keys=["fine"])["vectors"] == []


def test_metadata_limits(s3v: Any) -> None:
    where = index(s3v, dimension=2, metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})

    def write(metadata: dict[str, Any]) -> None:
        s3v.put_vectors(**where, vectors=[{"key": "k", "data": {"float32": [1.0, 2.0]}, "metadata": metadata}])

    def padded(key: str, size: int) -> dict[str, Any]:
        """Metadata whose compact JSON is ``size`` bytes: {"key":"xxx"}."""
        return {key: "x" * (size - len(key) - 7)}

    write({f"k{i}": i for i in range(50)})
    invalid(write, metadata={f"k{i}": i for i in range(51)})
    write(padded("tag", 2048))
    invalid(write, metadata=padded("tag", 2049))
    write(padded("text", 40 * 1024))  # non-filterable: only the 40 KB total applies
    invalid(write, metadata=padded("text", 40 * 1024 + 1))
    invalid(write, metadata={"text": "x" * 100, **padded("tag", 2049)})
    invalid(write, metadata={"nested": {"a": 1}})
    invalid(write, metadata={"tag": "é" * 1100})  # 2,200 bytes of UTF-8 in 1,100 characters


def test_get_delete_and_list_limits(s3v: Any, unchecked: Any) -> None:
    where = index(s3v, dimension=2)
    s3v.put_vectors(**where, vectors=[{"key": f"k{i:03d}", "data": {"float32": [1.0, i + 1.0]}} for i in range(40)])
    invalid(s3v.get_vectors, **where, keys=[f"k{i}" for i in range(101)])
    assert len(s3v.get_vectors(**where, keys=[f"k{i:03d}" for i in range(100)])["vectors"]) == 40
    invalid(s3v.delete_vectors, **where, keys=[f"k{i}" for i in range(501)])
    invalid(unchecked.delete_vectors, **where, keys=[])
    invalid(s3v.list_vectors, **where, maxResults=1001)
    invalid(s3v.list_vectors, **where, segmentCount=4, segmentIndex=4)
    invalid(s3v.list_vectors, **where, segmentCount=4)

    listed: list[str] = []
    page = s3v.list_vectors(**where, maxResults=7)
    listed += keys_of(page)
    while "nextToken" in page:
        page = s3v.list_vectors(**where, maxResults=7, nextToken=page["nextToken"])
        listed += keys_of(page)
    assert sorted(listed) == [f"k{i:03d}" for i in range(40)] and len(listed) == 40
    segments = [keys_of(s3v.list_vectors(**where, segmentCount=3, segmentIndex=i)) for i in range(3)]
    assert sorted(k for s in segments for k in s) == sorted(listed)

    s3v.delete_vectors(**where, keys=[f"k{i:03d}" for i in range(30)] + ["never-written"])
    assert len(keys_of(s3v.list_vectors(**where))) == 10


# -- full-text and hybrid search ----------------------------------------------------------------

CORPUS = {
    "k1": "kiwi kiwi kiwi banana",
    "k2": "kiwi banana banana banana",
    "k3": "banana apple",
    "k4": "apple cherry",
}


def test_full_text_search_ranks_by_bm25(s3v: Any) -> None:
    where = text_index(s3v)
    put(s3v, where, {k: ([1.0, i + 1.0, 0, 0], {"body": text}) for i, (k, text) in enumerate(CORPUS.items())})
    got = s3v.query_vectors(**where, topK=10, queryTexts=[{"text": "Kiwi", "metadataKey": "body"}], returnScores=True)
    assert keys_of(got) == ["k1", "k2"]  # k1 says kiwi three times; k3 and k4 never
    expected = lucene_bm25(CORPUS, "kiwi")
    for hit in got["vectors"]:
        assert hit["scores"] == {"bm25Scores": [{"metadataKey": "body", "score": pytest.approx(expected[hit["key"]])}]}
        assert "distance" not in hit and "metadata" not in hit

    rare = s3v.query_vectors(**where, topK=10, queryTexts=[{"text": "cherry banana", "metadataKey": "body"}])
    assert keys_of(rare)[0] == "k4"  # the rarer term weighs more
    first = s3v.query_vectors(**where, topK=1, queryTexts=[{"text": "banana", "metadataKey": "body"}])
    assert keys_of(first) == [max(lucene_bm25(CORPUS, "banana").items(), key=lambda item: item[1])[0]]


def test_full_text_search_pre_filters_and_sums_keys(s3v: Any) -> None:
    where = text_index(s3v, keys=("body", "title"))
    rows = {
        "a": ([1.0, 0, 0, 0], {"body": "red apple", "title": "fruit", "shelf": 1}),
        "b": ([0, 1.0, 0, 0], {"body": "green apple pie", "title": "apple recipes", "shelf": 2}),
        "c": ([0, 0, 1.0, 0], {"body": "apple", "shelf": 2}),
    }
    put(s3v, where, rows)
    texts = [{"text": "apple", "metadataKey": "body"}, {"text": "apple", "metadataKey": "title"}]
    got = s3v.query_vectors(**where, topK=3, queryTexts=texts, returnScores=True)
    totals = {v["key"]: sum(s["score"] for s in v["scores"]["bm25Scores"]) for v in got["vectors"]}
    assert keys_of(got) == sorted(totals, key=lambda k: -totals[k])
    assert [s["metadataKey"] for s in got["vectors"][0]["scores"]["bm25Scores"]] == ["body", "title"]
    assert keys_of(got)[0] == "b"  # the only one matching both keys
    filtered = s3v.query_vectors(**where, topK=1, queryTexts=texts, filter={"shelf": 1})
    assert keys_of(filtered) == ["a"]


def test_query_texts_limits(s3v: Any) -> None:
    where = text_index(s3v)
    put(s3v, where, {"a": ([1.0, 0, 0, 0], {"body": "kiwi", "other": "kiwi"})})
    invalid(s3v.query_vectors, **where, topK=1, queryTexts=[{"text": "kiwi", "metadataKey": "other"}])
    twice = [{"text": "kiwi", "metadataKey": "body"}] * 2
    invalid(s3v.query_vectors, **where, topK=1, queryTexts=twice)
    invalid(s3v.query_vectors, **where, topK=1, queryTexts=[{"text": "k", "metadataKey": f"m{i}"} for i in range(11)])
    invalid(s3v.query_vectors, **where, topK=1, queryTexts=[{"text": "x" * 1025, "metadataKey": "body"}])


def test_text_search_covers_vectors_written_before_it_was_configured(s3v: Any) -> None:
    where = index(s3v)
    put(s3v, where, {k: ([1.0, i + 1.0, 0, 0], {"body": text}) for i, (k, text) in enumerate(CORPUS.items())})
    s3v.update_metadata_configuration(**where, add={"textSearchConfigurations": [{"metadataKey": "body"}]})
    assert s3v.get_index(**where)["index"]["metadataConfiguration"] == {
        "textSearchConfigurations": [{"metadataKey": "body", "status": "ACTIVE"}]
    }
    assert keys_of(s3v.query_vectors(**where, topK=5, queryTexts=[{"text": "cherry", "metadataKey": "body"}])) == ["k4"]
    s3v.update_metadata_configuration(**where, delete={"textSearchConfigurations": [{"metadataKey": "body"}]})
    assert "metadataConfiguration" not in s3v.get_index(**where)["index"]
    invalid(s3v.query_vectors, **where, topK=5, queryTexts=[{"text": "cherry", "metadataKey": "body"}])


def test_update_metadata_configuration_errors(s3v: Any) -> None:
    where = text_index(s3v)
    body = {"textSearchConfigurations": [{"metadataKey": "body"}]}
    invalid(s3v.update_metadata_configuration, **where)
    invalid(s3v.update_metadata_configuration, **where, add=body, delete=body)
    assert error(s3v.update_metadata_configuration, **where, add=body) == ("ConflictException", 409)
    invalid(s3v.update_metadata_configuration, **where, delete={"textSearchConfigurations": [{"metadataKey": "x"}]})
    many = {"textSearchConfigurations": [{"metadataKey": f"m{i}"} for i in range(10)]}
    invalid(s3v.update_metadata_configuration, **where, add=many)  # 1 + 10 > 10
    invalid(
        s3v.update_metadata_configuration,
        **where,
        add={"textSearchConfigurations": [{"metadataKey": "t", "language": "xx"}]},
    )
    arn = s3v.update_metadata_configuration(
        **where, add={"textSearchConfigurations": [{"metadataKey": "t", "language": "de"}]}
    )
    assert arn["indexArn"].endswith(f"bucket/{where['vectorBucketName']}/index/idx")


def test_bm25_index_is_cached_and_rebuilt_after_writes(s3v: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[str] = []
    build = s3vectors_text._build
    monkeypatch.setattr(s3vectors_text, "_build", lambda *args: builds.append(args[1]) or build(*args))
    where = text_index(s3v)
    put(s3v, where, {"a": ([1.0, 0, 0, 0], {"body": "kiwi"})})
    kiwi = [{"text": "kiwi", "metadataKey": "body"}]
    for _ in range(3):
        assert keys_of(s3v.query_vectors(**where, topK=5, queryTexts=kiwi)) == ["a"]
    assert builds == ["body"]
    put(s3v, where, {"b": ([0, 1.0, 0, 0], {"body": "kiwi kiwi"})})
    assert keys_of(s3v.query_vectors(**where, topK=5, queryTexts=kiwi)) == ["b", "a"]
    s3v.delete_vectors(**where, keys=["b"])
    assert keys_of(s3v.query_vectors(**where, topK=5, queryTexts=kiwi)) == ["a"]
    assert builds == ["body"] * 3


def test_hybrid_search_fuses_ranks(s3v: Any) -> None:
    rng = np.random.default_rng(3)
    corpus = {f"k{i}": text for i, text in enumerate(["kiwi", "kiwi kiwi", "pear", "kiwi pear", "fig", "fig kiwi"] * 3)}
    data = rng.standard_normal((len(corpus), 4)).astype(np.float32)
    where = text_index(s3v)
    put(s3v, where, {k: (data[i].tolist(), {"body": t}) for i, (k, t) in enumerate(corpus.items())})
    query = rng.standard_normal(4).astype(np.float32)
    top_k = 5

    distances = 1 - cosine_similarity(data, query)
    vector_rank = {f"k{i}": r for r, i in enumerate(np.argsort(distances, kind="stable")[:top_k], start=1)}
    text = s3v.query_vectors(
        **where, topK=top_k, queryTexts=[{"text": "kiwi", "metadataKey": "body"}], returnScores=True
    )
    text_rank = {k: r for r, k in enumerate(keys_of(text), start=1)}
    bm25 = {v["key"]: v["scores"]["bm25Scores"] for v in text["vectors"]}
    fused = {k: sum(1 / (60 + ranks[k]) for ranks in (vector_rank, text_rank) if k in ranks) for k in corpus}
    expected = sorted((k for k in fused if fused[k] > 0), key=lambda k: -fused[k])[:top_k]

    got = s3v.query_vectors(
        **where,
        topK=top_k,
        queryVector={"float32": query.tolist()},
        queryTexts=[{"text": "kiwi", "metadataKey": "body"}],
        returnScores=True,
    )
    assert keys_of(got) == expected
    for hit in got["vectors"]:
        key, scores = hit["key"], hit["scores"]
        assert set(scores) <= {"fused", "bm25Scores", "vectorDistance"} and set(hit) == {"key", "scores"}
        assert scores["fused"] == pytest.approx(fused[key])
        assert ("vectorDistance" in scores) == (key in vector_rank)
        if key in vector_rank:
            assert scores["vectorDistance"] == pytest.approx(distances[int(key[1:])], rel=1e-5, abs=1e-6)
        assert scores.get("bm25Scores") == bm25.get(key)
