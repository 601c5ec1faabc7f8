"""Vector stores end to end through the official SDK: stores, their files and batches, ingestion
of every supported type, search with filters and ranking options, robustness of ingestion under
crashes, deletion cascades, expiry, bad input and tenant isolation.

What the API cannot show (the vectors themselves, the parsed text in S3, the expiry sweep) is
checked behind it, in the session stack's emulated AWS (the ``aws`` fixture).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from assistants_core.ingest.chunking import chunk_text
from tests.conftest import Stack
from tests.harness.documents import make_docx, make_pdf
from tests.harness.openapi_spec import validate_object, validate_response, wire
from tests.harness.retrieval import (
    DEADLINE,
    assert_error,
    executions,
    settled_file,
    settled_store,
    upload,
    wait_until,
)

DAY = 24 * 3600
VECTOR_BUCKET = "vectorbucket"
VECTOR_INDEX = "chunks-usem3-512"
STATIC_100 = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}
AUTO_RESOLVED = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


# ---------------------------------------------------------------- helpers


def vector_keys(aws: Callable[[str], Any], prefix: str) -> list[str]:
    """Keys of every vector in the index that start with ``prefix`` (``<vs>/`` or ``<vs>/<file>/``)."""
    s3vectors = aws("s3vectors")
    keys: list[str] = []
    kwargs: dict[str, Any] = {"vectorBucketName": VECTOR_BUCKET, "indexName": VECTOR_INDEX, "maxResults": 1000}
    while True:
        page = s3vectors.list_vectors(**kwargs)
        keys += [v["key"] for v in page["vectors"] if v["key"].startswith(prefix)]
        if not page.get("nextToken"):
            return sorted(keys)
        kwargs["nextToken"] = page["nextToken"]


def text_objects(aws: Callable[[str], Any], store_id: str) -> list[str]:
    """Keys of the parsed texts kept in S3 for a store's files."""
    s3 = aws("s3")
    keys: list[str] = []
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            keys += [o["Key"] for o in page.get("Contents", []) if f"/vector_stores/{store_id}/" in o["Key"]]
    return keys


def stored_items(aws: Callable[[str], Any], store_id: str) -> list[str]:
    """Sort keys of the table items under a store's partition (its files and batches)."""
    pages = (
        aws("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName="AssistantsTable",
            FilterExpression="contains(PK, :vs)",
            ExpressionAttributeValues={":vs": {"S": f"#VS#{store_id}"}},
        )
    )
    return sorted(item["SK"]["S"] for page in pages for item in page["Items"])


def expected_chunks(text: str, max_tokens: int = 800, overlap: int = 400) -> int:
    return len(chunk_text(text, max_tokens=max_tokens, overlap_tokens=overlap))


def search_raw(http: httpx.Client, store_id: str, **body: Any) -> dict:
    """A search through raw HTTP, validated against the spec as the server sent it."""
    response = http.post(f"/v1/vector_stores/{store_id}/search", json=body)
    assert response.status_code == 200, response.text
    page = response.json()
    validate_response("post", "/vector_stores/{vector_store_id}/search", page)
    return page


def long_text(words: int, seed: str) -> str:
    return " ".join(f"{seed}{i % 97} lorem{i % 13} ipsum" for i in range(words)) + "\n"


def ingest_executions(aws: Callable[[str], Any]) -> list[dict[str, Any]]:
    return executions(aws, "Ingest")


def inject_faults(stack_url: str, aws: Callable[[str], Any], times: int) -> None:
    """Make the next ``times`` invocations of the ingest function crash, once no ingestion runs
    (another test's could take the faults)."""
    wait_until(lambda: all(e["status"] != "RUNNING" for e in ingest_executions(aws)), "other ingestions to finish")
    response = httpx.post(f"{stack_url}/_local/faults", json={"function": "IngestFunction", "times": times})
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("function", "times")} == {"function": "IngestFunction", "times": times}


# ---------------------------------------------------------------- stores


def test_store_lifecycle_counts_and_expiry_fields(client: OpenAI, aws: Callable[[str], Any]) -> None:
    texts = {"alpha.txt": "Alpha notes about quokkas.\n", "beta.md": "# Beta\n\nBeta notes about wombats.\n"}
    file_ids = [upload(client, name, text) for name, text in texts.items()]
    store = client.vector_stores.create(
        name="handbook",
        metadata={"team": "docs"},
        file_ids=file_ids,
        chunking_strategy=STATIC_100,
        expires_after={"anchor": "last_active_at", "days": 3},
    )
    validate_object("VectorStoreObject", wire(store))
    assert store.id.startswith("vs_") and store.object == "vector_store"
    assert (store.name, store.metadata) == ("handbook", {"team": "docs"})
    # The files are added before the answer, ingestion starts after it.
    assert store.status == "in_progress"
    assert store.file_counts.model_dump() == {"in_progress": 2, "completed": 0, "failed": 0, "cancelled": 0, "total": 2}
    assert store.usage_bytes == 0
    assert store.expires_after.model_dump() == {"anchor": "last_active_at", "days": 3}
    assert store.last_active_at == store.created_at
    assert store.expires_at == store.last_active_at + 3 * DAY

    done = settled_store(client, store.id)
    validate_object("VectorStoreObject", wire(done))
    assert done.status == "completed"
    assert done.file_counts.model_dump() == {"in_progress": 0, "completed": 2, "failed": 0, "cancelled": 0, "total": 2}
    files = client.vector_stores.files.list(store.id, order="asc").data
    assert [f.id for f in files] == file_ids
    assert all(f.status == "completed" and f.chunking_strategy.model_dump() == STATIC_100 for f in files)
    assert all(f.usage_bytes > 0 for f in files)
    assert done.usage_bytes == sum(f.usage_bytes for f in files)
    assert len(vector_keys(aws, f"{store.id}/")) == 2
    assert client.vector_stores.retrieve(store.id) == done

    renamed = client.vector_stores.update(store.id, name="manual", metadata={"team": "eng", "v": "2"})
    validate_object("VectorStoreObject", wire(renamed))
    assert (renamed.name, renamed.metadata) == ("manual", {"team": "eng", "v": "2"})
    assert renamed.file_counts == done.file_counts and renamed.usage_bytes == done.usage_bytes
    assert renamed.expires_at == renamed.last_active_at + 3 * DAY

    shorter = client.vector_stores.update(store.id, expires_after={"anchor": "last_active_at", "days": 1})
    assert shorter.expires_after.model_dump() == {"anchor": "last_active_at", "days": 1}
    assert shorter.expires_at == shorter.last_active_at + DAY
    assert shorter.name == "manual"

    cleared = client.vector_stores.update(store.id, expires_after=None)
    validate_object("VectorStoreObject", wire(cleared))
    assert cleared.expires_after is None and cleared.expires_at is None
    assert client.vector_stores.retrieve(store.id).expires_at is None

    deleted = client.vector_stores.delete(store.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (store.id, "vector_store.deleted", True)
    validate_object("DeleteVectorStoreResponse", wire(deleted))
    with pytest.raises(openai.NotFoundError) as error:
        client.vector_stores.retrieve(store.id)
    assert error.value.body["param"] == "vector_store_id"
    assert vector_keys(aws, f"{store.id}/") == []
    # The files themselves stay.
    assert [client.files.retrieve(f).id for f in file_ids] == file_ids


def test_store_list_pagination(client: OpenAI, http: httpx.Client) -> None:
    ids = [client.vector_stores.create(name=f"s{i}").id for i in range(5)]
    assert [s.id for s in client.vector_stores.list(order="asc")] == ids
    assert [s.id for s in client.vector_stores.list(limit=2)] == ids[::-1]  # auto-paging, newest first
    page = client.vector_stores.list(limit=2, order="asc", after=ids[1])
    assert [s.id for s in page.data] == ids[2:4] and page.has_more
    page = client.vector_stores.list(limit=10, order="asc", before=ids[3])
    assert [s.id for s in page.data] == ids[:3] and not page.has_more
    page = client.vector_stores.list(order="desc", after=ids[1])
    assert [s.id for s in page.data] == [ids[0]]
    body = http.get("/v1/vector_stores", params={"limit": 2}).json()
    validate_object("ListVectorStoresResponse", body)
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[4], ids[3], True)
    assert [s["name"] for s in body["data"]] == ["s4", "s3"]
    assert_error(http.get("/v1/vector_stores", params={"limit": 0}), 400, param="limit")
    assert_error(http.get("/v1/vector_stores", params={"limit": 101}), 400, param="limit")


# ---------------------------------------------------------------- files of a store


def test_store_files_crud_content_and_filter(client: OpenAI, http: httpx.Client, aws: Callable[[str], Any]) -> None:
    store = client.vector_stores.create(name="files")
    good = upload(client, "guide.txt", "The quokka handbook says feeding time is noon.\n")
    bad = upload(client, "photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))

    item = client.vector_stores.files.create(
        vector_store_id=store.id, file_id=good, attributes={"lang": "en", "rank": 3}, chunking_strategy=STATIC_100
    )
    validate_object("VectorStoreFileObject", wire(item))
    assert (item.id, item.object, item.vector_store_id, item.status) == (
        good,
        "vector_store.file",
        store.id,
        "in_progress",
    )
    assert item.attributes == {"lang": "en", "rank": 3}
    assert item.chunking_strategy.model_dump() == STATIC_100
    assert item.last_error is None and item.usage_bytes == 0
    # An image is not searchable: it fails at once, with a code.
    failed = client.vector_stores.files.create_and_poll(file_id=bad, vector_store_id=store.id, poll_interval_ms=100)
    validate_object("VectorStoreFileObject", wire(failed))
    assert failed.status == "failed" and failed.last_error.code == "unsupported_file"
    assert failed.chunking_strategy.model_dump() == AUTO_RESOLVED
    done = settled_file(client, store.id, good)
    assert done.status == "completed" and done.usage_bytes > 0 and done.last_error is None

    listed = client.vector_stores.files.list(store.id, order="asc")
    validate_object("ListVectorStoreFilesResponse", wire(listed))
    assert [f.id for f in listed.data] == [good, bad]
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="completed")] == [good]
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="failed")] == [bad]
    assert client.vector_stores.files.list(store.id, filter="in_progress").data == []
    assert client.vector_stores.files.list(store.id, filter="cancelled").data == []
    assert [f.id for f in client.vector_stores.files.list(store.id, limit=1, order="desc").data] == [bad]
    assert [f.id for f in client.vector_stores.files.list(store.id, order="asc", after=good).data] == [bad]
    assert [f.id for f in client.vector_stores.files.list(store.id, order="asc", before=bad).data] == [good]
    assert_error(http.get(f"/v1/vector_stores/{store.id}/files", params={"filter": "done"}), 400, param="filter")

    assert client.vector_stores.files.retrieve(good, vector_store_id=store.id) == done
    content = client.vector_stores.files.content(good, vector_store_id=store.id)
    assert [(c.type, c.text) for c in content] == [("text", "The quokka handbook says feeding time is noon.\n")]
    body = http.get(f"/v1/vector_stores/{store.id}/files/{good}/content").json()
    validate_object("VectorStoreFileContentResponse", body)
    assert_error(http.get(f"/v1/vector_stores/{store.id}/files/{bad}/content"), 400, param="file_id")

    updated = client.vector_stores.files.update(good, vector_store_id=store.id, attributes={"lang": "fr", "ok": True})
    validate_object("VectorStoreFileObject", wire(updated))
    assert updated.attributes == {"lang": "fr", "ok": True} and updated.status == "completed"
    hits = client.vector_stores.search(store.id, query="quokka feeding time")
    assert [(h.file_id, h.attributes) for h in hits.data] == [(good, {"lang": "fr", "ok": True})]
    # Searches filter on the new attributes at once.
    assert (
        client.vector_stores.search(store.id, query="quokka", filters={"type": "eq", "key": "lang", "value": "en"}).data
        == []
    )

    store_now = client.vector_stores.retrieve(store.id)
    assert store_now.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "total": 2,
    }
    assert store_now.usage_bytes == done.usage_bytes

    deleted = client.vector_stores.files.delete(good, vector_store_id=store.id)
    validate_object("DeleteVectorStoreFileResponse", wire(deleted))
    assert (deleted.id, deleted.object, deleted.deleted) == (good, "vector_store.file.deleted", True)
    assert vector_keys(aws, f"{store.id}/{good}/") == []
    assert text_objects(aws, store.id) == []
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(good, vector_store_id=store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.delete(good, vector_store_id=store.id)
    assert client.files.retrieve(good).id == good  # the file itself stays
    after = client.vector_stores.retrieve(store.id)
    assert after.file_counts.model_dump() == {"in_progress": 0, "completed": 0, "failed": 1, "cancelled": 0, "total": 1}
    assert after.usage_bytes == 0
    assert client.vector_stores.search(store.id, query="quokka feeding time").data == []


def test_large_content_is_a_redirect_the_sdk_follows(
    client: OpenAI, http: httpx.Client, aws: Callable[[str], Any], stack: Any
) -> None:
    """A page larger than a Lambda response may carry (6 MB) is served from S3, as a file's bytes are.

    Ingesting megabytes of text takes minutes locally, so the test stores the large page where
    ingestion keeps a completed file's content, and reads it back through the API.
    """
    store = client.vector_stores.create(name="large content")
    file_id = upload(client, "big.txt", "A short text that ingestion stores as its page.\n")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    assert settled_file(client, store.id, file_id).status == "completed"
    [key] = text_objects(aws, store.id)
    assert key.endswith(f"/vector_stores/{store.id}/{file_id}.json")
    s3 = aws("s3")
    stored = s3.get_object(Bucket="filesbucket", Key=key)
    assert stored["ContentType"] == "application/json"
    assert json.loads(stored["Body"].read())["data"] == [
        {"type": "text", "text": "A short text that ingestion stores as its page.\n"}
    ]

    text = "".join(f'Line {n}: the quokka is a small wallaby, «é» and "quotes".\n' for n in range(80_000))
    page = {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text}],
        "has_more": False,
        "next_page": None,
    }
    s3.put_object(Bucket="filesbucket", Key=key, Body=json.dumps(page).encode(), ContentType="application/json")
    assert len(json.dumps(page)) > 4 * 1024 * 1024

    content = client.vector_stores.files.content(file_id, vector_store_id=store.id)
    assert [(c.type, c.text) for c in content] == [("text", text)]
    response = http.get(f"/v1/vector_stores/{store.id}/files/{file_id}/content")
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(f"{stack.aws_endpoint}/filesbucket/{key}?")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in location and "response-content-type=application%2Fjson" in location
    with httpx.Client(timeout=60) as plain:  # the URL needs no API key
        fetched = plain.get(location)
    assert fetched.headers["content-type"] == "application/json"
    validate_object("VectorStoreFileContentResponse", fetched.json())


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="store files are keyed FILE#<file id>, so lists follow the files' upload order, not the "
    "created_at (when it was added to the store) that 'order' sorts by",
)
def test_store_files_are_listed_by_when_they_were_added(client: OpenAI) -> None:
    older, newer = upload(client, "older.txt", "older\n"), upload(client, "newer.txt", "newer\n")
    store = client.vector_stores.create(name="order")
    client.vector_stores.files.create(vector_store_id=store.id, file_id=newer)
    time.sleep(1.05)  # created_at counts seconds
    client.vector_stores.files.create(vector_store_id=store.id, file_id=older)
    listed = client.vector_stores.files.list(store.id, order="asc").data
    assert [f.id for f in listed] == [newer, older]
    assert listed[0].created_at < listed[1].created_at


def test_file_counts_move_while_a_batch_runs(client: OpenAI) -> None:
    # Seven files of growing length, five ingested at a time: they complete one after another.
    ids = [upload(client, f"part{i}.txt", long_text(400 * (i + 1), f"progress{i}x")) for i in range(7)]
    store = client.vector_stores.create(name="progress")
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=ids, chunking_strategy=STATIC_100
    )
    seen: list[tuple[int, int, int]] = []

    def finished() -> bool:
        counts = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).file_counts
        seen.append((counts.in_progress, counts.completed, counts.total))
        return counts.in_progress == 0

    wait_until(finished, f"batch {batch.id} to finish", deadline=2 * DEADLINE)
    assert seen[-1] == (0, 7, 7), seen
    assert all(total == 7 and in_progress + completed == 7 for in_progress, completed, total in seen), seen
    completed = [c for _, c, _ in seen]
    assert completed == sorted(completed), "completed files went back"
    assert any(0 < c < 7 for c in completed), f"no snapshot while the batch ran: {sorted(set(seen))}"
    store_counts = client.vector_stores.retrieve(store.id).file_counts
    assert (store_counts.completed, store_counts.total) == (7, 7)


def test_ingestion_logs_a_line_per_file(client: OpenAI, stack: Stack) -> None:
    file_id = upload(client, "logged.txt", "A file whose ingestion is logged.\n")
    store = client.vector_stores.create(name="logged", file_ids=[file_id])
    settled_store(client, store.id)

    def logged() -> list[dict[str, Any]]:
        lines = stack.log_path.read_text(errors="replace").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{") and '"ingested a file"' in line]
        return [r for r in records if r.get("file_id") == file_id and r.get("vector_store_id") == store.id]

    (record,) = wait_until(logged, "the ingestion's log line")
    assert record["function_name"] == "IngestFunction" and record["level"] == "INFO"
    assert (record["status"], record["chunks"], record["bytes"]) == ("completed", 1, 34)
    assert record["seconds"] >= 0


def test_file_batches_and_polling_helpers(client: OpenAI, http: httpx.Client) -> None:
    store = client.vector_stores.create(name="batches")
    ids = [upload(client, f"doc{i}.txt", f"Batch document number {i} about topic{i}.\n") for i in range(3)]

    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id,
        file_ids=[ids[0], ids[1], ids[0]],  # a file named twice is added once
        attributes={"source": "bulk"},
        chunking_strategy=STATIC_100,
    )
    validate_object("VectorStoreFileBatchObject", wire(batch))
    assert batch.id.startswith("vsfb_") and batch.object == "vector_store.files_batch"
    assert batch.vector_store_id == store.id and batch.status == "in_progress"
    assert batch.file_counts.total == 2 and batch.file_counts.in_progress + batch.file_counts.completed == 2
    done = client.vector_stores.file_batches.poll(batch.id, vector_store_id=store.id, poll_interval_ms=100)
    validate_object("VectorStoreFileBatchObject", wire(done))
    assert done.status == "completed"
    assert done.file_counts.model_dump() == {"in_progress": 0, "completed": 2, "failed": 0, "cancelled": 0, "total": 2}
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id) == done
    batch_files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, order="asc")
    validate_object("ListVectorStoreFilesResponse", wire(batch_files))
    assert [f.id for f in batch_files.data] == ids[:2]
    assert all(
        f.attributes == {"source": "bulk"} and f.chunking_strategy.model_dump() == STATIC_100 for f in batch_files
    )

    # Per-file attributes and chunking, beside a file that takes the batch's.
    second = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[
            {"file_id": ids[2], "attributes": {"source": "own", "n": 2}, "chunking_strategy": {"type": "auto"}},
        ],
        attributes={"source": "batch"},
        chunking_strategy=STATIC_100,
        poll_interval_ms=100,
    )
    assert second.status == "completed" and second.file_counts.completed == 1 and second.file_counts.total == 1
    own = client.vector_stores.files.retrieve(ids[2], vector_store_id=store.id)
    assert own.attributes == {"source": "own", "n": 2}
    assert own.chunking_strategy.model_dump() == AUTO_RESOLVED
    # Only the batch's own files, with the status filter.
    assert [f.id for f in client.vector_stores.file_batches.list_files(second.id, vector_store_id=store.id)] == [ids[2]]
    assert client.vector_stores.file_batches.list_files(second.id, vector_store_id=store.id, filter="failed").data == []
    assert [
        f.id
        for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="completed")
    ] == sorted(ids[:2], reverse=True)

    uploaded = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id,
        files=[("up1.md", b"# Uploaded one\n\nabout narwhals\n"), ("up2.json", b'{"animal": "okapi"}')],
        poll_interval_ms=100,
    )
    assert uploaded.status == "completed"
    assert uploaded.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "total": 2,
    }
    single = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("single.txt", b"A single upload about axolotls.\n"), poll_interval_ms=100
    )
    assert single.status == "completed"
    assert client.files.retrieve(single.id).filename == "single.txt"

    final = client.vector_stores.retrieve(store.id)
    assert final.file_counts.model_dump() == {"in_progress": 0, "completed": 6, "failed": 0, "cancelled": 0, "total": 6}
    assert final.status == "completed"
    hits = client.vector_stores.search(store.id, query="axolotls")
    assert hits.data[0].file_id == single.id and hits.data[0].filename == "single.txt"

    # A completed batch cannot be cancelled; an unknown batch is a 404.
    assert_error(http.post(f"/v1/vector_stores/{store.id}/file_batches/{batch.id}/cancel"), 400, param="batch_id")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_missing", vector_store_id=store.id)


def test_batch_cancel(client: OpenAI, aws: Callable[[str], Any]) -> None:
    store = client.vector_stores.create(name="cancel")
    texts = {
        upload(client, f"c{i}.txt", long_text(400, f"cancel{i}x")): long_text(400, f"cancel{i}x") for i in range(20)
    }
    ids = list(texts)
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert batch.file_counts.total == 20
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    validate_object("VectorStoreFileBatchObject", wire(cancelled))
    assert cancelled.status == "cancelled"
    counts = cancelled.file_counts
    assert counts.in_progress == 0 and counts.total == 20 and counts.failed == 0
    assert counts.cancelled >= 1 and counts.cancelled + counts.completed == 20

    statuses = {
        status: {
            f.id
            for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter=status)
        }
        for status in ("in_progress", "completed", "failed", "cancelled")
    }
    assert statuses["in_progress"] == set() and statuses["failed"] == set()
    assert len(statuses["cancelled"]) == counts.cancelled and len(statuses["completed"]) == counts.completed
    assert statuses["cancelled"] | statuses["completed"] == set(ids)
    store_now = client.vector_stores.retrieve(store.id)
    assert store_now.status == "completed"
    assert store_now.file_counts.model_dump() == counts.model_dump()

    # Ingestion still running for the cancelled files takes back what it wrote.
    def finished() -> bool:
        ours = [e for e in ingest_executions(aws) if e["name"].startswith(batch.id)]
        return bool(ours) and all(e["status"] != "RUNNING" for e in ours)

    wait_until(finished, "the batch's ingestion to finish")
    for file_id, text in texts.items():
        keys = vector_keys(aws, f"{store.id}/{file_id}/")
        assert len(keys) == (expected_chunks(text) if file_id in statuses["completed"] else 0), file_id
    final = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert final.status == "cancelled" and final.file_counts == counts
    assert client.vector_stores.retrieve(store.id).file_counts.model_dump() == counts.model_dump()

    # A new batch of all 20 starts the cancelled ones again (the completed ones stay as they are):
    # they move from the old batch to the new one, and every file ends completed.
    again = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=ids, poll_interval_ms=100
    )
    assert again.status == "completed"
    assert again.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": counts.cancelled,
        "failed": 0,
        "cancelled": 0,
        "total": counts.cancelled,
    }
    old = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).file_counts
    assert (old.total, old.cancelled, old.completed) == (counts.completed, 0, counts.completed)
    assert client.vector_stores.retrieve(store.id).file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 20,
        "failed": 0,
        "cancelled": 0,
        "total": 20,
    }
    for file_id, text in texts.items():
        assert len(vector_keys(aws, f"{store.id}/{file_id}/")) == expected_chunks(text), file_id


# ---------------------------------------------------------------- ingestion


def test_every_supported_type_is_ingested_and_searchable(client: OpenAI, http: httpx.Client) -> None:
    sources = {
        "facts.txt": ("The zorblax reactor in plain text runs at 451 kelvin.\n", "zorblax reactor"),
        "guide.md": ("# Guide\n\nThe **quibbleflux** capacitor is painted teal.\n", "quibbleflux capacitor"),
        "page.html": (
            "<html><head><style>p {color: red}</style><script>var hidden = 1;</script></head>"
            "<body><h1>Page</h1><p>The <b>snorkelwump</b> festival starts in May.</p></body></html>",
            "snorkelwump festival",
        ),
        "data.json": ('{"creature": "flumphadoodle", "legs": 7}', "flumphadoodle legs"),
        "tool.py": ("def grizzlefrotz():\n    return 'grizzlefrotz computes the tax'\n", "grizzlefrotz tax"),
        "report.pdf": (make_pdf([["The wibblesnatch bridge is 300 metres long."]]), "wibblesnatch bridge"),
        "memo.docx": (make_docx(["Memo", "The plonkerdoodle office moved to Lisbon."]), "plonkerdoodle office"),
    }
    ids = {name: upload(client, name, data) for name, (data, _) in sources.items()}
    png = upload(client, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    archive = upload(client, "bundle.zip", b"PK\x03\x04" + bytes(64))
    broken = upload(client, "broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage garbage\n")
    store = client.vector_stores.create(name="types", file_ids=[*ids.values(), png, archive, broken])
    done = settled_store(client, store.id)
    assert done.file_counts.model_dump() == {"in_progress": 0, "completed": 7, "failed": 3, "cancelled": 0, "total": 10}

    for bad, code in ((png, "unsupported_file"), (archive, "unsupported_file"), (broken, "invalid_file")):
        item = client.vector_stores.files.retrieve(bad, vector_store_id=store.id)
        validate_object("VectorStoreFileObject", wire(item))
        assert item.status == "failed" and item.last_error.code == code and item.last_error.message
        assert item.usage_bytes == 0

    contents = {
        name: "".join(part.text for part in client.vector_stores.files.content(file_id, vector_store_id=store.id))
        for name, file_id in ids.items()
    }
    assert contents["facts.txt"] == sources["facts.txt"][0]
    assert contents["guide.md"] == sources["guide.md"][0]
    assert contents["page.html"] == "Page\n\nThe snorkelwump festival starts in May."
    assert contents["data.json"] == sources["data.json"][0]
    assert contents["tool.py"] == sources["tool.py"][0]
    assert contents["report.pdf"] == "The wibblesnatch bridge is 300 metres long."
    assert contents["memo.docx"] == "Memo\nThe plonkerdoodle office moved to Lisbon."

    for name, (_, query) in sources.items():
        page = search_raw(http, store.id, query=query)
        top = page["data"][0]
        assert (top["file_id"], top["filename"]) == (ids[name], name), (name, page["data"][:3])
        assert query.split()[0] in top["content"][0]["text"]


def test_text_denser_than_its_tokens_is_chunked_to_fit_the_index(client: OpenAI, aws: Callable[[str], Any]) -> None:
    """800 tokens of dashes are ~48 KB of text, over S3 Vectors' 40 KB of metadata a vector: the
    chunks are cut to fit, and the file completes instead of failing on every retry."""
    text = "# Rules\n" + ("-" * 120 + "\n") * 3000 + "The ruler is called Pemberton.\n"
    file_id = upload(client, "rules.md", text)
    store = client.vector_stores.create(name="dense")
    item = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=file_id, poll_interval_ms=100)
    assert item.status == "completed", item.last_error
    assert len(vector_keys(aws, f"{store.id}/{file_id}/")) > len(chunk_text(text))
    hits = client.vector_stores.search(store.id, query="Pemberton ruler").data
    assert hits and hits[0].file_id == file_id and "Pemberton" in hits[0].content[0].text


def test_static_chunking_gives_several_chunks(client: OpenAI, aws: Callable[[str], Any]) -> None:
    text = long_text(600, "chunky")
    file_id = upload(client, "long.txt", text)
    store = client.vector_stores.create(name="chunks")
    item = client.vector_stores.files.create_and_poll(
        file_id=file_id,
        vector_store_id=store.id,
        chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}},
        poll_interval_ms=100,
    )
    assert item.status == "completed"
    count = expected_chunks(text, 100, 0)
    assert count >= 20
    keys = vector_keys(aws, f"{store.id}/{file_id}/")
    assert keys == sorted(f"{store.id}/{file_id}/{n}" for n in range(count))
    # auto: 800-token chunks overlapping by 400.
    other = client.vector_stores.create(name="auto", file_ids=[file_id])
    settled_store(client, other.id)
    assert len(vector_keys(aws, f"{other.id}/{file_id}/")) == expected_chunks(text) < count


# ---------------------------------------------------------------- search


@dataclass(frozen=True)
class Library:
    client: OpenAI
    http: httpx.Client
    store_id: str
    ids: dict[str, str]  # file name -> file id


@pytest.fixture(scope="module")
def library(stack_url: str) -> Iterator[Library]:
    """A store of four files with attributes, of a tenant of its own, shared by the search tests
    (which only read it)."""
    key = f"sk-library-{uuid.uuid4().hex}"
    client = OpenAI(base_url=f"{stack_url}/v1", api_key=key, max_retries=0, timeout=60)
    docs = {
        "ann.txt": ("Ann writes about the migration of arctic terns.", {"author": "ann", "year": 2020, "draft": False}),
        "bob.txt": (
            "Bob writes about the migration of monarch butterflies.",
            {"author": "bob", "year": 2021, "draft": True},
        ),
        "cy.txt": ("Cy writes about the migration of humpback whales.", {"author": "cy", "year": 2022, "draft": False}),
        "dee.txt": (
            "Dee writes about bread baking and sourdough starters.",
            {"author": "dee", "year": 2023, "draft": True},
        ),
    }
    store = client.vector_stores.create(name="library")
    ids = {}
    for name, (text, attributes) in docs.items():
        ids[name] = upload(client, name, text)
        client.vector_stores.files.create(vector_store_id=store.id, file_id=ids[name], attributes=attributes)
    assert settled_store(client, store.id).file_counts.completed == 4
    with httpx.Client(base_url=stack_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        yield Library(client, http, store.id, ids)


def test_search_results_queries_and_limits(library: Library) -> None:
    client, http, store_id, ids = library.client, library.http, library.store_id, library.ids
    page = search_raw(http, store_id, query="migration of whales")
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["migration of whales"]
    assert (page["has_more"], page["next_page"]) == (False, None)
    assert len(page["data"]) == 4
    top = page["data"][0]
    assert (top["file_id"], top["filename"]) == (ids["cy.txt"], "cy.txt")
    assert top["attributes"] == {"author": "cy", "year": 2022, "draft": False}
    assert top["content"] == [{"type": "text", "text": "Cy writes about the migration of humpback whales."}]
    scores = [r["score"] for r in page["data"]]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)

    # Through the SDK, the same results.
    sdk = client.vector_stores.search(store_id, query="migration of whales")
    assert [r.file_id for r in sdk.data] == [r["file_id"] for r in page["data"]]

    several = search_raw(http, store_id, query=["sourdough starters", "arctic terns"])
    assert several["search_query"] == ["sourdough starters", "arctic terns"]
    assert {r["file_id"] for r in several["data"][:2]} == {ids["dee.txt"], ids["ann.txt"]}
    assert len({r["file_id"] for r in several["data"]}) == len(several["data"]) == 4  # each chunk once

    assert [r["file_id"] for r in search_raw(http, store_id, query="sourdough", max_num_results=1)["data"]] == [
        ids["dee.txt"]
    ]
    assert len(search_raw(http, store_id, query="migration", max_num_results=2)["data"]) == 2
    assert len(search_raw(http, store_id, query="migration", max_num_results=50)["data"]) == 4

    rewritten = search_raw(http, store_id, query="What is there about the sourdough starters?", rewrite_query=True)
    assert rewritten["search_query"] == ["sourdough starters"]
    assert rewritten["data"][0]["file_id"] == ids["dee.txt"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "eq", "key": "author", "value": "bob"}, {"bob.txt"}),
        ({"type": "ne", "key": "author", "value": "bob"}, {"ann.txt", "cy.txt", "dee.txt"}),
        ({"type": "eq", "key": "draft", "value": True}, {"bob.txt", "dee.txt"}),
        ({"type": "eq", "key": "year", "value": 2022}, {"cy.txt"}),
        ({"type": "gt", "key": "year", "value": 2021}, {"cy.txt", "dee.txt"}),
        ({"type": "gte", "key": "year", "value": 2021}, {"bob.txt", "cy.txt", "dee.txt"}),
        ({"type": "lt", "key": "year", "value": 2021}, {"ann.txt"}),
        ({"type": "lte", "key": "year", "value": 2021.5}, {"ann.txt", "bob.txt"}),
        ({"type": "in", "key": "author", "value": ["ann", "dee", "zed"]}, {"ann.txt", "dee.txt"}),
        ({"type": "nin", "key": "author", "value": ["ann", "dee"]}, {"bob.txt", "cy.txt"}),
        ({"type": "in", "key": "year", "value": [2020, 2023]}, {"ann.txt", "dee.txt"}),
        ({"type": "eq", "key": "missing", "value": "x"}, set()),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "draft", "value": False},
                    {"type": "gte", "key": "year", "value": 2021},
                ],
            },
            {"cy.txt"},
        ),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "author", "value": "ann"},
                    {"type": "gt", "key": "year", "value": 2022},
                ],
            },
            {"ann.txt", "dee.txt"},
        ),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "ne", "key": "author", "value": "cy"},
                    {
                        "type": "or",
                        "filters": [
                            {"type": "eq", "key": "draft", "value": True},
                            {"type": "lt", "key": "year", "value": 2021},
                        ],
                    },
                ],
            },
            {"ann.txt", "bob.txt", "dee.txt"},
        ),
    ],
)
def test_search_filters(library: Library, filters: dict, expected: set[str]) -> None:
    client, http, store_id, ids = library.client, library.http, library.store_id, library.ids
    names = {file_id: name for name, file_id in ids.items()}
    page = search_raw(http, store_id, query="writes about migration", filters=filters, max_num_results=50)
    assert {names[r["file_id"]] for r in page["data"]} == expected
    sdk = client.vector_stores.search(store_id, query="writes about migration", filters=filters, max_num_results=50)
    assert {names[r.file_id] for r in sdk.data} == expected


def test_search_ranking_options(library: Library) -> None:
    http, store_id, ids = library.http, library.store_id, library.ids
    everything = search_raw(http, store_id, query="humpback whales", max_num_results=50)["data"]
    scores = [r["score"] for r in everything]
    assert len(scores) == 4 and scores[0] > scores[-1]
    threshold = (scores[0] + scores[1]) / 2
    kept = search_raw(
        http, store_id, query="humpback whales", max_num_results=50, ranking_options={"score_threshold": threshold}
    )["data"]
    assert [r["file_id"] for r in kept] == [ids["cy.txt"]]
    assert all(r["score"] >= threshold for r in kept)
    # First by vectors and by keywords: the best possible fused score.
    best = search_raw(http, store_id, query="humpback whales", ranking_options={"score_threshold": 1})["data"]
    assert [(r["file_id"], r["score"]) for r in best] == [(ids["cy.txt"], 1.0)]

    vector_only = search_raw(
        http, store_id, query="humpback whales", max_num_results=50, ranking_options={"ranker": "none"}
    )["data"]
    assert vector_only[0]["file_id"] == ids["cy.txt"] and len(vector_only) == 4
    vector_scores = [r["score"] for r in vector_only]
    assert all(0 <= s <= 1 for s in vector_scores) and vector_scores == sorted(vector_scores, reverse=True)
    assert vector_scores != scores  # cosine similarity, not the fused score
    for ranker in ("auto", "default-2024-11-15"):
        ranked = search_raw(http, store_id, query="humpback whales", ranking_options={"ranker": ranker})["data"]
        assert [r["file_id"] for r in ranked] == [r["file_id"] for r in everything]


# ---------------------------------------------------------------- robustness


def test_a_crashed_ingestion_is_retried_and_indexed_once(
    client: OpenAI, stack_url: str, aws: Callable[[str], Any]
) -> None:
    text = long_text(300, "retry")
    file_id = upload(client, "retry.txt", text)
    store = client.vector_stores.create(name="retry")
    inject_faults(stack_url, aws, 1)
    client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id, chunking_strategy=STATIC_100)
    item = settled_file(client, store.id, file_id)
    assert item.status == "completed" and item.last_error is None
    count = expected_chunks(text, 100, 20)
    assert count > 1
    assert vector_keys(aws, f"{store.id}/{file_id}/") == sorted(f"{store.id}/{file_id}/{n}" for n in range(count))
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1


def test_ingestion_that_keeps_crashing_ends_failed(client: OpenAI, stack_url: str, aws: Callable[[str], Any]) -> None:
    file_id = upload(client, "doomed.txt", "This file's ingestion always crashes.\n")
    store = client.vector_stores.create(name="doomed")
    # statemachine/ingest.asl.json: IngestFile runs at most 4 times (3 retries), then
    # MarkFileFailed, itself the ingest function: 6 crashes also take its first two attempts.
    inject_faults(stack_url, aws, 6)
    client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    item = settled_file(client, store.id, file_id)
    validate_object("VectorStoreFileObject", wire(item))
    assert item.status == "failed" and item.last_error.code == "server_error" and item.last_error.message
    assert client.vector_stores.retrieve(store.id).file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
        "total": 1,
    }
    assert vector_keys(aws, f"{store.id}/") == []
    # The faults are used up: the same file in another store completes.
    again = client.vector_stores.create(name="doomed again", file_ids=[file_id])
    assert settled_store(client, again.id).file_counts.completed == 1
    # Adding the failed file again is how it is retried: it starts over and completes, and the
    # store counts it once, as completed.
    retried = client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    assert retried.status == "in_progress" and retried.last_error is None
    assert settled_file(client, store.id, file_id).status == "completed"
    assert client.vector_stores.retrieve(store.id).file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "total": 1,
    }
    assert len(vector_keys(aws, f"{store.id}/")) == 1
    # A completed file added again is left as it is (no second ingestion).
    assert client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id).status == "completed"


def test_a_file_whose_ingestion_is_lost_is_failed_by_the_sweep(
    client: OpenAI, stack_url: str, aws: Callable[[str], Any]
) -> None:
    """Whatever becomes of its ingestion (here every attempt crashes, MarkFileFailed's too, and the
    execution fails), a file leaves in_progress: the expiry sweep fails it past its deadline."""
    from assistants_core.services.expiry import INGESTION_DEADLINE_SECONDS

    file_id = upload(client, "lost.txt", "This file's ingestion is lost.\n")
    store = client.vector_stores.create(name="lost")
    inject_faults(stack_url, aws, 50)
    try:
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
        wait_until(lambda: all(e["status"] != "RUNNING" for e in ingest_executions(aws)), "the execution to end")
        assert client.vector_stores.files.retrieve(file_id, vector_store_id=store.id).status == "in_progress"
    finally:
        inject_faults(stack_url, aws, 0)

    def sweep(until: float) -> dict[str, int]:
        result = aws("lambda").invoke(FunctionName="ExpiryFunction", Payload=json.dumps({"until": int(until)}))
        assert "FunctionError" not in result, result["Payload"].read()
        return dict(json.loads(result["Payload"].read()))

    assert sweep(time.time())["ingestion"] == 0  # not due yet
    assert sweep(time.time() + INGESTION_DEADLINE_SECONDS + 60)["ingestion"] >= 1
    item = client.vector_stores.files.retrieve(file_id, vector_store_id=store.id)
    validate_object("VectorStoreFileObject", wire(item))
    assert item.status == "failed" and item.last_error.code == "server_error"
    assert client.vector_stores.retrieve(store.id).file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
        "total": 1,
    }
    # It left the index with in_progress: a later sweep does not touch it again.
    assert sweep(time.time() + INGESTION_DEADLINE_SECONDS + 60)["ingestion"] == 0


# ---------------------------------------------------------------- deletion


def test_deleting_a_file_cascades_to_every_store(client: OpenAI, aws: Callable[[str], Any]) -> None:
    shared = upload(client, "shared.txt", "The shared file mentions the glimmerquartz mine.\n")
    kept = upload(client, "kept.txt", "The kept file mentions the copper mine.\n")
    first = client.vector_stores.create(name="first", file_ids=[shared, kept])
    second = client.vector_stores.create(name="second", file_ids=[shared])
    for store in (first, second):
        settled_store(client, store.id)
    assert len(vector_keys(aws, f"{first.id}/{shared}/")) == len(vector_keys(aws, f"{second.id}/{shared}/")) == 1
    kept_usage = client.vector_stores.files.retrieve(kept, vector_store_id=first.id).usage_bytes

    deleted = client.files.delete(shared)
    assert (deleted.id, deleted.deleted) == (shared, True)
    for store in (first, second):
        with pytest.raises(openai.NotFoundError):
            client.vector_stores.files.retrieve(shared, vector_store_id=store.id)
        with pytest.raises(openai.NotFoundError):
            client.vector_stores.files.content(shared, vector_store_id=store.id)
        assert vector_keys(aws, f"{store.id}/{shared}/") == []
        assert [k for k in text_objects(aws, store.id) if shared in k] == []
        hits = client.vector_stores.search(store.id, query="glimmerquartz mine").data
        assert [h.file_id for h in hits] == ([kept] if store is first else [])
    one = client.vector_stores.retrieve(first.id)
    assert one.file_counts.model_dump() == {"in_progress": 0, "completed": 1, "failed": 0, "cancelled": 0, "total": 1}
    assert one.usage_bytes == kept_usage
    two = client.vector_stores.retrieve(second.id)
    assert two.file_counts.model_dump() == {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0}
    assert two.usage_bytes == 0
    assert len(vector_keys(aws, f"{first.id}/{kept}/")) == 1
    assert [f.id for f in client.vector_stores.files.list(first.id)] == [kept]

    client.vector_stores.delete(first.id)
    assert vector_keys(aws, f"{first.id}/") == []
    assert text_objects(aws, first.id) == []
    assert client.files.retrieve(kept).id == kept
    # The kept file can go into a new store: nothing of the old membership remains.
    third = client.vector_stores.create(name="third", file_ids=[kept])
    assert settled_store(client, third.id).file_counts.completed == 1
    assert len(vector_keys(aws, f"{third.id}/{kept}/")) == 1
    client.files.delete(kept)
    assert vector_keys(aws, f"{third.id}/") == []
    assert client.vector_stores.retrieve(third.id).file_counts.total == 0
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(kept)


# ---------------------------------------------------------------- expiry


def test_expiry_sweep_releases_expired_stores(client: OpenAI, aws: Callable[[str], Any]) -> None:
    file_id = upload(client, "ephemeral.txt", "The ephemeral store knows about moonbeam jars.\n")
    expiring = client.vector_stores.create(
        name="expiring", file_ids=[file_id], expires_after={"anchor": "last_active_at", "days": 1}
    )
    lasting = client.vector_stores.create(name="lasting", file_ids=[file_id])
    for store in (expiring, lasting):
        settled_store(client, store.id)
    assert len(vector_keys(aws, f"{expiring.id}/")) == 1
    assert client.vector_stores.search(expiring.id, query="moonbeam jars").data[0].file_id == file_id

    result = aws("lambda").invoke(
        FunctionName="ExpiryFunction", Payload=json.dumps({"until": int(time.time()) + 2 * DAY})
    )
    assert "FunctionError" not in result, result["Payload"].read()
    released = json.loads(result["Payload"].read())
    assert released["vector_store"] >= 1

    gone = client.vector_stores.retrieve(expiring.id)
    validate_object("VectorStoreObject", wire(gone))
    assert gone.status == "expired" and gone.usage_bytes == 0
    assert vector_keys(aws, f"{expiring.id}/") == []
    assert text_objects(aws, expiring.id) == []
    with pytest.raises(openai.BadRequestError) as error:
        client.vector_stores.search(expiring.id, query="moonbeam jars")
    assert error.value.body["param"] == "vector_store_id"
    assert error.value.body["code"] == "vector_store_expired"
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.files.create(vector_store_id=expiring.id, file_id=file_id)
    released_file = client.vector_stores.files.retrieve(file_id, vector_store_id=expiring.id)
    assert (released_file.status, released_file.usage_bytes) == ("completed", 0)
    assert client.vector_stores.files.content(file_id, vector_store_id=expiring.id).data == []
    # Its usage was released once: taking the file out does not release it again.
    client.vector_stores.files.delete(file_id, vector_store_id=expiring.id)
    emptied = client.vector_stores.retrieve(expiring.id)
    assert (emptied.status, emptied.usage_bytes, emptied.file_counts.total) == ("expired", 0, 0)

    kept = client.vector_stores.retrieve(lasting.id)
    assert kept.status == "completed" and kept.expires_at is None and kept.usage_bytes > 0
    assert len(vector_keys(aws, f"{lasting.id}/")) == 1
    assert client.vector_stores.search(lasting.id, query="moonbeam jars").data[0].file_id == file_id
    assert client.files.retrieve(file_id).id == file_id


def test_expiry_sweep_deletes_expired_files_everywhere(client: OpenAI, aws: Callable[[str], Any]) -> None:
    file_id = client.files.create(
        file=("fleeting.txt", b"The fleeting file mentions the saffron lantern.\n"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    ).id
    store = client.vector_stores.create(name="holds an expiring file", file_ids=[file_id])
    assert settled_store(client, store.id).file_counts.completed == 1
    assert len(vector_keys(aws, f"{store.id}/{file_id}/")) == 1

    result = aws("lambda").invoke(FunctionName="ExpiryFunction", Payload=json.dumps({"until": int(time.time()) + 7200}))
    assert "FunctionError" not in result, result["Payload"].read()
    assert json.loads(result["Payload"].read())["file"] >= 1

    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)
    s3 = aws("s3")
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket="filesbucket").get("Contents", []) if file_id in o["Key"]]
    assert stored == []
    assert vector_keys(aws, f"{store.id}/{file_id}/") == []
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(file_id, vector_store_id=store.id)
    left = client.vector_stores.retrieve(store.id)
    assert (left.status, left.file_counts.total, left.usage_bytes) == ("completed", 0, 0)


# ---------------------------------------------------------------- bad input


def static(max_tokens: int, overlap: int) -> dict:
    return {"type": "static", "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"chunking_strategy": static(99, 0)}, "chunking_strategy"),
        ({"chunking_strategy": static(4097, 0)}, "chunking_strategy"),
        ({"chunking_strategy": static(200, 101)}, "chunking_strategy"),
        ({"chunking_strategy": static(200, -1)}, "chunking_strategy"),
        ({"chunking_strategy": {"type": "static"}}, "chunking_strategy"),
        ({"chunking_strategy": {"type": "fancy"}}, "chunking_strategy"),
        ({"file_ids": [f"file-{i}" for i in range(501)]}, "file_ids"),
        ({"expires_after": {"anchor": "created_at", "days": 1}}, "expires_after.anchor"),
        ({"expires_after": {"anchor": "last_active_at", "days": 0}}, "expires_after.days"),
        ({"expires_after": {"anchor": "last_active_at", "days": 366}}, "expires_after.days"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"name": "x", "unexpected": 1}, "unexpected"),
    ],
)
def test_bad_store_creation_is_a_400(client: OpenAI, http: httpx.Client, body: dict, param: str) -> None:
    error = assert_error(http.post("/v1/vector_stores", json=body), 400)
    assert error["param"].startswith(param), error
    assert client.vector_stores.list().data == []


def test_bad_file_and_batch_input_is_a_4xx(client: OpenAI, http: httpx.Client, aws: Callable[[str], Any]) -> None:
    store = client.vector_stores.create(name="bad input")
    file_id = upload(client, "ok.txt", "fine\n")
    base = f"/v1/vector_stores/{store.id}"

    assert_error(http.post("/v1/vector_stores", json={"file_ids": [file_id, "file-missing"]}), 404, param="file_ids[1]")
    assert [s.id for s in client.vector_stores.list()] == [store.id]
    assert_error(http.post(f"{base}/files", json={"file_id": "file-missing"}), 404, param="file_id")
    assert_error(http.post(f"{base}/files", json={}), 400, param="file_id")
    assert_error(
        http.post(
            f"{base}/files",
            json={
                "file_id": file_id,
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                },
            },
        ),
        400,
    )
    for attributes in (
        {f"k{i}": "v" for i in range(17)},
        {"k" * 65: "v"},
        {"k": "v" * 513},
        {f"k{i}": "v" * 200 for i in range(10)},
        {"k": {"nested": 1}},
        {"k": ["a"]},
    ):
        error = assert_error(http.post(f"{base}/files", json={"file_id": file_id, "attributes": attributes}), 400)
        assert error["param"].startswith("attributes"), error
    batches = f"{base}/file_batches"
    assert_error(http.post(batches, json={"file_ids": [f"file-{i}" for i in range(2001)]}), 400)
    assert_error(http.post(batches, json={"files": [{"file_id": f"file-{i}"} for i in range(2001)]}), 400)
    assert_error(http.post(batches, json={"file_ids": [file_id], "files": [{"file_id": file_id}]}), 400)
    assert_error(http.post(batches, json={}), 400)
    assert_error(http.post(batches, json={"file_ids": []}), 400)
    assert_error(http.post(batches, json={"file_ids": [file_id, "file-missing"]}), 404, param="file_ids[1]")
    assert_error(http.post(batches, json={"files": [{"file_id": "file-missing"}]}), 404, param="files[0].file_id")
    assert client.vector_stores.files.list(store.id).data == []
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0
    assert stored_items(aws, store.id) == []  # no batch item either

    item = client.vector_stores.files.create(vector_store_id=store.id, file_id=file_id, attributes={"a": "b"})
    assert_error(http.post(f"{base}/files/{file_id}", json={"attributes": {f"k{i}": 1 for i in range(17)}}), 400)
    assert client.vector_stores.files.retrieve(file_id, vector_store_id=store.id).attributes == item.attributes
    with pytest.raises(openai.NotFoundError) as error:
        client.vector_stores.files.update("file-missing", vector_store_id=store.id, attributes={})
    assert error.value.body["param"] == "file_id"
    with pytest.raises(openai.NotFoundError) as error:
        client.vector_stores.retrieve("vs_missing")
    assert error.value.body["param"] == "vector_store_id"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.update("vs_missing", name="x")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.delete("vs_missing")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.list("vs_missing")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.create(vector_store_id="vs_missing", file_ids=[file_id])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "x", "filters": {"type": "regex", "key": "a", "value": "x"}}, "filters"),
        ({"query": "x", "filters": {"type": "gt", "key": "a", "value": "2020"}}, "filters"),
        ({"query": "x", "filters": {"type": "lte", "key": "a", "value": True}}, "filters"),
        ({"query": "x", "filters": {"type": "in", "key": "a", "value": "x"}}, "filters"),
        ({"query": "x", "filters": {"type": "eq", "key": "a", "value": ["x"]}}, "filters"),
        ({"query": "x", "filters": {"type": "eq", "key": "a"}}, "filters"),
        ({"query": "x", "filters": {"type": "and", "filters": []}}, "filters"),
        ({"query": "x", "filters": {"type": "xor", "filters": [{"type": "eq", "key": "a", "value": 1}]}}, "filters"),
        ({"query": "x", "max_num_results": 0}, "max_num_results"),
        ({"query": "x", "max_num_results": 51}, "max_num_results"),
        ({"query": "x", "ranking_options": {"score_threshold": 1.5}}, "ranking_options.score_threshold"),
        ({"query": "x", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({}, "query"),
        ({"query": "x" * 4097}, "query"),
        ({"query": ["fine", "y" * 4097]}, "query[1]"),
        # More conditions than S3 Vectors evaluates: a 400, never the service's refusal as a 500.
        (
            {
                "query": "x",
                "filters": {
                    "type": "and",
                    "filters": [{"type": "or", "filters": [{"type": "eq", "key": "a", "value": n} for n in range(32)]}]
                    * 4,
                },
            },
            "filters",
        ),
    ],
)
def test_bad_search_is_a_400(client: OpenAI, http: httpx.Client, body: dict, param: str | None) -> None:
    store = client.vector_stores.create(name="search input")
    error = assert_error(http.post(f"/v1/vector_stores/{store.id}/search", json=body), 400)
    assert error["param"] == param or error["param"].startswith(param + "."), error


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("search", {"query": ""}, "query"),
        ("search", {"rewrite_query": True}, "query"),
        ("search", {"query": "x", "filters": {"type": "gt", "key": "a", "value": "2020"}}, "filters"),
        ("create", {"chunking_strategy": static(99, 0)}, "chunking_strategy.static.max_chunk_size_tokens"),
        ("files", {"attributes": {"k": {"nested": 1}}}, "attributes.k"),
    ],
)
def test_errors_name_the_param(client: OpenAI, http: httpx.Client, path: str, body: dict, param: str) -> None:
    store = client.vector_stores.create(name="params")
    url = {
        "search": f"/v1/vector_stores/{store.id}/search",
        "create": "/v1/vector_stores",
        "files": f"/v1/vector_stores/{store.id}/files",
    }[path]
    if path == "files":
        body = {"file_id": upload(client, "a.txt", "a\n"), **body}
    error = assert_error(http.post(url, json=body), 400)
    assert error["param"] == param
    assert "CompoundFilter" not in error["message"] and "'and' or 'or'" not in error["message"]


def test_search_on_a_missing_store_is_a_404(client: OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.vector_stores.search("vs_missing", query="anything")
    assert error.value.body["param"] == "vector_store_id"
    assert_error(http.post("/v1/vector_stores/vs_missing/search", json={"query": "x"}), 404, param="vector_store_id")


# ---------------------------------------------------------------- tenants


def test_tenants_are_isolated(client: OpenAI, other_client: OpenAI, aws: Callable[[str], Any]) -> None:
    word = f"zqx{uuid.uuid4().hex[:8]}"
    mine = upload(client, "mine.txt", f"My secret: the {word} vault code is 1234.\n")
    store = client.vector_stores.create(name="private", file_ids=[mine])
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[upload(client, "more.txt", f"More {word} notes.\n")], poll_interval_ms=100
    )
    settled_store(client, store.id)
    theirs = other_client.files.create(
        file=("theirs.txt", f"Their note: the {word} garden is green.\n".encode()), purpose="assistants"
    )
    their_store = other_client.vector_stores.create(name="theirs", file_ids=[theirs.id])
    settled_store(other_client, their_store.id)

    assert other_client.vector_stores.list().data == [other_client.vector_stores.retrieve(their_store.id)]
    denied = [
        lambda: other_client.vector_stores.retrieve(store.id),
        lambda: other_client.vector_stores.update(store.id, name="stolen"),
        lambda: other_client.vector_stores.delete(store.id),
        lambda: other_client.vector_stores.search(store.id, query=word),
        lambda: other_client.vector_stores.files.list(store.id),
        lambda: other_client.vector_stores.files.retrieve(mine, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.update(mine, vector_store_id=store.id, attributes={"x": "y"}),
        lambda: other_client.vector_stores.files.delete(mine, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.content(mine, vector_store_id=store.id),
        lambda: other_client.vector_stores.files.create(vector_store_id=store.id, file_id=theirs.id),
        lambda: other_client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id),
        lambda: other_client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id),
        lambda: other_client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id),
        lambda: other_client.files.delete(mine),
    ]
    for call in denied:
        with pytest.raises(openai.NotFoundError):
            call()
    # My files cannot go into their store.
    for call in (
        lambda: other_client.vector_stores.files.create(vector_store_id=their_store.id, file_id=mine),
        lambda: other_client.vector_stores.file_batches.create(vector_store_id=their_store.id, file_ids=[mine]),
        lambda: other_client.vector_stores.create(file_ids=[mine]),
    ):
        with pytest.raises(openai.NotFoundError) as error:
            call()
        assert "file_id" in error.value.body["param"]
    assert [f.id for f in other_client.vector_stores.files.list(their_store.id)] == [theirs.id]
    assert len(other_client.vector_stores.list().data) == 1

    # Their searches find only their chunk, mine only mine.
    theirs_found = other_client.vector_stores.search(their_store.id, query=f"{word} vault code", max_num_results=50)
    assert [h.file_id for h in theirs_found.data] == [theirs.id]
    mine_found = client.vector_stores.search(store.id, query=f"{word} garden", max_num_results=50)
    assert {h.file_id for h in mine_found.data} == {mine, batch_file_id(client, store.id, batch.id)}

    mine_now = client.vector_stores.retrieve(store.id)
    assert mine_now.name == "private" and mine_now.file_counts.completed == 2
    assert client.vector_stores.files.retrieve(mine, vector_store_id=store.id).attributes == {}
    assert len(vector_keys(aws, f"{store.id}/")) == 2


def batch_file_id(client: OpenAI, store_id: str, batch_id: str) -> str:
    (item,) = client.vector_stores.file_batches.list_files(batch_id, vector_store_id=store_id).data
    return item.id
