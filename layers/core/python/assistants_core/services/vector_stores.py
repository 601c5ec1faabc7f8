"""Vector stores: create, read, update, delete, list, expire, and their activity.

A store is an item under the tenant. Its ``file_counts`` and ``usage_bytes`` are counters
beside the object (``fc_<status>``, ``fc_total``, ``usage_bytes``), moved with DynamoDB's
atomic ``ADD`` in the same transaction as the store file whose status changes, so they are
exact under any concurrency. Its ``status`` is derived: ``expired`` once it expired,
``in_progress`` while a file is, else ``completed``.

A store remembers the embedding model, its dimensions and the index its chunks went to, so a
deployment that later changes its model keeps searching old stores with theirs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ..blobs import BlobStore
from ..config import settings
from ..errors import InvalidRequestError, NotFoundError
from ..ids import new_id, now
from ..repository import (
    VECTOR_STORE_PREFIX,
    ConcurrentModification,
    Page,
    Repository,
    StoredDoc,
    tenant_pk,
)
from ..types import DeletedObject, ListPage
from ..types.vector_store import (
    FileCounts,
    StoreExpiresAfter,
    VectorStore,
    VectorStoreCreateParams,
    VectorStoreFileCreateParams,
    VectorStoreUpdateParams,
)
from .expiry import EXPIRY_ATTRIBUTES, EXPIRY_KIND_VECTOR_STORE, expiry_attributes
from .ingestion import IngestionStarter
from .pagination import ListParams, to_list_page

DAY = 24 * 3600
# last_active_at moves at most this often: every search and run would otherwise write the store.
ACTIVITY_GRANULARITY_SECONDS = 60
STATUSES = ("in_progress", "completed", "failed", "cancelled")


def store_sk(vector_store_id: str) -> str:
    return VECTOR_STORE_PREFIX + vector_store_id


def counter(status: str) -> str:
    """The attribute that counts files in ``status`` (``total`` counts them all)."""
    return f"fc_{status}"


def file_counts(attributes: dict[str, Any]) -> FileCounts:
    return FileCounts(**{status: int(attributes.get(counter(status), 0)) for status in (*STATUSES, "total")})


@dataclass(frozen=True)
class StoreRecord:
    """A store as the services need it: the object, and what only the service sees."""

    store: VectorStore
    stored: StoredDoc
    embedding_model: str
    embedding_dimensions: int
    index: str

    @property
    def expired(self) -> bool:
        return self.store.status == "expired"


def _materialize(stored: StoredDoc, moment: int | None = None) -> VectorStore:
    store = VectorStore.model_validate(stored.doc)
    counts = file_counts(stored.attributes)
    expired = stored.doc.get("status") == "expired" or (
        store.expires_at is not None and store.expires_at <= (moment if moment is not None else now())
    )
    status = "expired" if expired else "in_progress" if counts.in_progress > 0 else "completed"
    return store.model_copy(
        update={"file_counts": counts, "usage_bytes": int(stored.attributes.get("usage_bytes", 0)), "status": status}
    )


def _record(stored: StoredDoc) -> StoreRecord:
    attributes = stored.attributes
    return StoreRecord(
        store=_materialize(stored),
        stored=stored,
        embedding_model=str(attributes.get("embedding_model") or settings().embedding_model),
        embedding_dimensions=int(attributes.get("embedding_dimensions") or settings().embedding_dimensions),
        index=str(attributes.get("vector_index") or settings().vector_index),
    )


def _doc(store: VectorStore) -> dict[str, Any]:
    """What is stored: the object without what is derived (counts, usage, status but expired)."""
    doc = store.model_dump(mode="json", exclude={"file_counts", "usage_bytes", "status"})
    if store.status == "expired":
        doc["status"] = "expired"
    return doc


def _expires_at(expires_after: dict[str, Any] | None, last_active_at: int) -> int | None:
    return last_active_at + int(expires_after["days"]) * DAY if expires_after else None


def load_store(repo: Repository, tenant: str, vector_store_id: str, param: str = "vector_store_id") -> StoreRecord:
    stored = repo.get(tenant_pk(tenant), store_sk(vector_store_id))
    if stored is None:
        raise NotFoundError.for_object("vector store", vector_store_id, param=param)
    return _record(stored)


def require_active(record: StoreRecord, param: str = "vector_store_id") -> None:
    """Searching or adding files to an expired store is a 400, as on OpenAI."""
    if record.expired:
        raise InvalidRequestError(
            f"Vector store {record.store.id} has expired; create a new one.", param=param, code="vector_store_expired"
        )


def create_vector_store(
    repo: Repository,
    ingestion: IngestionStarter | None,
    tenant: str,
    params: VectorStoreCreateParams,
    *,
    expires_after: StoreExpiresAfter | None = None,
) -> VectorStore:
    """Create a store, add ``file_ids`` to it and start their ingestion.

    ``expires_after`` overrides the request's (a thread's store from message attachments)."""
    from .files import require_files
    from .vector_store_files import add_files

    if params.file_ids:
        require_files(repo, tenant, params.file_ids, "file_ids[{index}]")
    created_at = now()
    chosen = expires_after or params.expires_after
    expiry = chosen.model_dump() if chosen else None
    store = VectorStore(
        id=new_id("vs"),
        created_at=created_at,
        name=params.name,
        expires_after=expiry,
        expires_at=_expires_at(expiry, created_at),
        last_active_at=created_at,
        metadata=params.metadata or {},
    )
    repo.create(
        tenant_pk(tenant),
        store_sk(store.id),
        _doc(store),
        embedding_model=settings().embedding_model,
        embedding_dimensions=settings().embedding_dimensions,
        vector_index=settings().vector_index,
        **expiry_attributes(EXPIRY_KIND_VECTOR_STORE, store.expires_at),
    )
    entries = [
        VectorStoreFileCreateParams(file_id=f, chunking_strategy=params.chunking_strategy) for f in params.file_ids
    ]
    add_files(repo, ingestion, tenant, store.id, entries)
    return get_vector_store(repo, tenant, store.id)


def get_vector_store(repo: Repository, tenant: str, vector_store_id: str) -> VectorStore:
    return load_store(repo, tenant, vector_store_id).store


def update_vector_store(
    repo: Repository, tenant: str, vector_store_id: str, params: VectorStoreUpdateParams
) -> VectorStore:
    changes = params.changes()
    for _ in range(5):
        record = load_store(repo, tenant, vector_store_id)
        store = record.store.model_copy(update={k: v for k, v in changes.items() if k != "expires_after"})
        attributes: dict[str, Any] = {}
        remove: list[str] = []
        if "expires_after" in changes:
            expiry = changes["expires_after"]
            store.expires_after = expiry
            store.expires_at = _expires_at(expiry, store.last_active_at or now())
            attributes = expiry_attributes(EXPIRY_KIND_VECTOR_STORE, store.expires_at)
            remove = [] if attributes else list(EXPIRY_ATTRIBUTES)
        try:
            repo.save(
                tenant_pk(tenant),
                store_sk(vector_store_id),
                _doc(store),
                expected_version=record.stored.version,
                remove=remove,
                **attributes,
            )
        except ConcurrentModification:
            continue
        return get_vector_store(repo, tenant, vector_store_id)
    raise ConcurrentModification(f"vector store {vector_store_id}: too many concurrent changes")


def delete_vector_store(repo: Repository, blobs: BlobStore, tenant: str, vector_store_id: str) -> DeletedObject:
    """Delete a store with its files' chunks and vectors (the files themselves stay)."""
    from .vector_store_files import release_all

    record = load_store(repo, tenant, vector_store_id)
    release_all(repo, blobs, tenant, record, remove=True)
    repo.delete(tenant_pk(tenant), store_sk(vector_store_id))
    return DeletedObject(id=vector_store_id, object="vector_store.deleted")


def list_vector_stores(repo: Repository, tenant: str, params: ListParams) -> ListPage[VectorStore]:
    """One page of stores; counts and usage come from each item, so a page is one Query."""
    page = repo.list_stored(tenant_pk(tenant), VECTOR_STORE_PREFIX, **params.query())
    stores = [_materialize(stored).model_dump(mode="json") for stored in page.items]
    return to_list_page(Page(items=stores, has_more=page.has_more), VectorStore)


def touch(repo: Repository, tenant: str, records: list[StoreRecord]) -> None:
    """Note that the stores were used (a search, a run): ``last_active_at`` and the expiry it
    anchors move, at most once a minute per store."""
    moment = now()
    for record in records:
        store = record.store
        if store.last_active_at is not None and moment - store.last_active_at < ACTIVITY_GRANULARITY_SECONDS:
            continue
        store = store.model_copy(
            update={"last_active_at": moment, "expires_at": _expires_at(store.expires_after, moment)}
        )
        # Someone else wrote it just now: activity is approximate by design.
        with contextlib.suppress(ConcurrentModification):
            repo.save(
                tenant_pk(tenant),
                store_sk(store.id),
                _doc(store),
                expected_version=record.stored.version,
                **expiry_attributes(EXPIRY_KIND_VECTOR_STORE, store.expires_at),
            )


def expire_vector_store(repo: Repository, blobs: BlobStore, tenant: str, vector_store_id: str, until: int) -> bool:
    """Mark a store expired and release its chunks, if it is still due by ``until`` (its
    activity may have moved its expiry since the index was read). Returns whether it expired."""
    from .vector_store_files import release_all

    stored = repo.get(tenant_pk(tenant), store_sk(vector_store_id))
    if stored is None:
        return False
    record = _record(stored)
    expires_at = record.store.expires_at
    if stored.doc.get("status") != "expired" and (expires_at is None or expires_at > until):
        return False
    store = record.store.model_copy(update={"status": "expired"})
    try:
        repo.save(
            tenant_pk(tenant),
            store_sk(vector_store_id),
            _doc(store),
            expected_version=stored.version,
            remove=list(EXPIRY_ATTRIBUTES),
        )
    except ConcurrentModification:
        return False  # used meanwhile: the next sweep looks again
    release_all(repo, blobs, tenant, record, remove=False)
    return True
