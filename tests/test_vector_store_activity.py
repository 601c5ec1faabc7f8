"""A store's activity anchors its expiry: every use moves ``last_active_at`` (at most once a
minute), and with it ``expires_at`` and the store's place in the expiry index."""

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
