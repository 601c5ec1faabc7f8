"""File batches: many files added to a store at once, followed and cancelled together.

A batch is an item under its store (``BATCH#<id>``) with counters like the store's, moved by
the same transactions as its files' statuses. Its status is derived: ``cancelled`` once
cancelled, ``in_progress`` while a file is, else ``completed``.
"""

from __future__ import annotations

import time

from ..errors import APIError, ConflictError, NotFoundError
from ..ids import new_id, now
from ..repository import BATCH_PREFIX, Repository, StoredDoc, vector_store_pk
from ..types import ListPage
from ..types.vector_store import FileBatch, FileBatchCreateParams, VectorStoreFile
from .ingestion import IngestionStarter
from .pagination import ListParams
from .vector_store_files import attach_files, list_store_files, set_status
from .vector_stores import file_counts, load_store, require_active

# How long cancelling a batch cancels its files itself; ingestion cancels the rest.
CANCEL_SECONDS = 10.0


def _sk(batch_id: str) -> str:
    return BATCH_PREFIX + batch_id


def _materialize(stored: StoredDoc) -> FileBatch:
    batch = FileBatch.model_validate(stored.doc)
    counts = file_counts(stored.attributes)
    if batch.status != "cancelled":
        batch.status = "in_progress" if counts.in_progress > 0 else "completed"
    return batch.model_copy(update={"file_counts": counts})


def create_batch(
    repo: Repository, ingestion: IngestionStarter, tenant: str, vector_store_id: str, params: FileBatchCreateParams
) -> FileBatch:
    require_active(load_store(repo, tenant, vector_store_id))
    batch = FileBatch(id=new_id("vsfb"), created_at=now(), vector_store_id=vector_store_id, status="in_progress")
    pk = vector_store_pk(tenant, vector_store_id)
    repo.create(pk, _sk(batch.id), batch.model_dump(mode="json", exclude={"file_counts"}))
    try:
        added = attach_files(
            repo,
            tenant,
            vector_store_id,
            params.entries(),
            batch_id=batch.id,
            param="file_ids[{index}]" if params.file_ids is not None else "files[{index}].file_id",
        )
    except APIError:
        # A file that does not exist (checked before any is added): the batch was never answered.
        repo.delete(pk, _sk(batch.id))
        raise
    if added:  # after the try: a start that fails must not delete the batch its files are in
        ingestion.start(tenant, vector_store_id, added, batch_id=batch.id)
    return get_batch(repo, tenant, vector_store_id, batch.id)


def is_cancelled(repo: Repository, tenant: str, vector_store_id: str, batch_id: str) -> bool:
    doc = repo.get_doc(vector_store_pk(tenant, vector_store_id), _sk(batch_id))
    return doc is not None and doc.get("status") == "cancelled"


def _load(repo: Repository, tenant: str, vector_store_id: str, batch_id: str) -> StoredDoc:
    stored = repo.get(vector_store_pk(tenant, vector_store_id), _sk(batch_id))
    if stored is None:
        load_store(repo, tenant, vector_store_id)
        raise NotFoundError.for_object("file batch", batch_id, param="batch_id")
    return stored


def get_batch(repo: Repository, tenant: str, vector_store_id: str, batch_id: str) -> FileBatch:
    return _materialize(_load(repo, tenant, vector_store_id, batch_id))


def cancel_batch(repo: Repository, tenant: str, vector_store_id: str, batch_id: str) -> FileBatch:
    """Cancel the batch's files still in progress; ingestion of each checks its status before
    it completes and leaves nothing behind for a cancelled file.

    The files are cancelled one by one for CANCEL_SECONDS at most (a batch of thousands would
    outlast API Gateway's 29 s); the ingest function cancels any file of a cancelled batch that
    is left when its turn comes."""
    stored = _load(repo, tenant, vector_store_id, batch_id)
    batch = _materialize(stored)
    if batch.status == "completed":
        raise ConflictError(f"File batch {batch_id} has already completed; it cannot be cancelled.", param="batch_id")
    if batch.status != "cancelled":
        repo.mutate(vector_store_pk(tenant, vector_store_id), _sk(batch_id), lambda doc: {**doc, "status": "cancelled"})
    page_params = ListParams(limit=100, order="asc")
    deadline = time.monotonic() + CANCEL_SECONDS
    while time.monotonic() < deadline:
        page = list_store_files(repo, tenant, vector_store_id, page_params, status="in_progress", batch_id=batch_id)
        for item in page.data:
            if time.monotonic() >= deadline:
                break
            set_status(repo, tenant, vector_store_id, item.id, "cancelled")
        if not page.has_more:
            break
        page_params = ListParams(limit=100, order="asc", after=page.last_id)
    return get_batch(repo, tenant, vector_store_id, batch_id)


def list_batch_files(
    repo: Repository, tenant: str, vector_store_id: str, batch_id: str, params: ListParams, status: str | None
) -> ListPage[VectorStoreFile]:
    _load(repo, tenant, vector_store_id, batch_id)
    return list_store_files(repo, tenant, vector_store_id, params, status=status, batch_id=batch_id)
