"""Vector store services on the repository alone (moto and DynamoDB Local), for what the end to
end tests cannot stage: a clock that moves, a cancel that runs out of time."""

from __future__ import annotations

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
    store, _ = vector_stores.create_vector_store(
        repo, "t1", VectorStoreCreateParams(name="s", expires_after=StoreExpiresAfter(anchor="last_active_at", days=7))
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

    store, _ = vector_stores.create_vector_store(repo, "t1", VectorStoreCreateParams(name="s"))
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
