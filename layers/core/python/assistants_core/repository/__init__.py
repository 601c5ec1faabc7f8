"""Every DynamoDB access pattern of the service, in one place.

One table (see ``docs/data-model.md`` for its items and the why). Every key but the API-key
directory starts with ``T#<tenant>``, so a request scoped to one tenant cannot name another
tenant's item; :mod:`.keys` builds (and reads back) every key.

Each API object is stored whole as JSON in ``doc`` with a ``version`` counter for optimistic
concurrency. Attributes that conditions and filters need live beside it: ``status`` and
``run_id`` (mirrored from the doc), ``active_run_id`` on a thread (the run lock) and
``task_token`` on a run parked in ``requires_action``. Ids sort by creation time
(:mod:`assistants_core.ids`), so sort keys order lists and an id is its own cursor.
"""

from __future__ import annotations

from functools import lru_cache

from .documents import EXPIRY_INDEX, MIRRORED_ATTRIBUTES, TTL_ATTRIBUTE, Doc, Order, Page, StoredDoc, StoredPage
from .errors import ConcurrentModification, EventSequenceTaken, ItemTooLarge, TransactionConflict
from .keys import (
    API_KEY_PREFIX,
    API_KEYS_PK,
    ASSISTANT_PREFIX,
    BATCH_PREFIX,
    EVENT_ITEM_BYTES,
    EVENT_PREFIX,
    FILE_PREFIX,
    MESSAGE_PREFIX,
    PART_PREFIX,
    RUN_PREFIX,
    THREAD_SK,
    UPLOAD_PREFIX,
    VECTOR_STORE_PREFIX,
    event_sk,
    file_stores_pk,
    object_id_of,
    run_log_pk,
    step_prefix,
    step_sk,
    tenant_of,
    tenant_pk,
    thread_pk,
    upload_pk,
    vector_store_of,
    vector_store_pk,
)
from .run_log import EventPage, RunLog


class Repository(RunLog):
    """The service's one door to DynamoDB: documents (:mod:`.documents`) and the run event log
    (:mod:`.run_log`)."""


@lru_cache(maxsize=1)
def default_repository() -> Repository:
    """The repository for this process's table; created once per Lambda container."""
    return Repository()


__all__ = [
    "EXPIRY_INDEX",
    "MIRRORED_ATTRIBUTES",
    "TTL_ATTRIBUTE",
    "ConcurrentModification",
    "Doc",
    "EventPage",
    "EventSequenceTaken",
    "ItemTooLarge",
    "Order",
    "Page",
    "Repository",
    "StoredDoc",
    "StoredPage",
    "TransactionConflict",
    "default_repository",
    "BATCH_PREFIX",
    "FILE_PREFIX",
    "PART_PREFIX",
    "UPLOAD_PREFIX",
    "VECTOR_STORE_PREFIX",
    "file_stores_pk",
    "object_id_of",
    "tenant_of",
    "upload_pk",
    "vector_store_of",
    "vector_store_pk",
    "API_KEY_PREFIX",
    "API_KEYS_PK",
    "ASSISTANT_PREFIX",
    "EVENT_ITEM_BYTES",
    "EVENT_PREFIX",
    "MESSAGE_PREFIX",
    "RUN_PREFIX",
    "THREAD_SK",
    "event_sk",
    "run_log_pk",
    "step_prefix",
    "step_sk",
    "tenant_pk",
    "thread_pk",
]
