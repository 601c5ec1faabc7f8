"""The files of a vector store: add, read, list, change attributes, remove, and status moves.

A store file is an item under its store (``T#<t>#VS#<vs>`` / ``FILE#<file_id>``) holding the
vector store file object, with ``batch_id`` and ``chunk_count`` beside it; a membership item
under the file (``T#<t>#FILE#<file_id>`` / ``VS#<vs>``) says which stores deleting the file
must clean. Every change of a store file's status moves the store's (and its batch's) counters
in the same transaction (:func:`set_status`).

Its chunks are vectors keyed ``<vs>/<file>/<n>`` for n below ``chunk_count``, which ingestion
records before it writes the first one, so removal always knows every key it may have written.
"""

from __future__ import annotations

from typing import Any

from ..blobs import BlobStore, Download, store_content_key
from ..errors import InvalidRequestError, NotFoundError
from ..ids import now
from ..repository import (
    BATCH_PREFIX,
    FILE_PREFIX,
    VECTOR_STORE_PREFIX,
    ConcurrentModification,
    Repository,
    StoredDoc,
    TransactionConflict,
    file_stores_pk,
    tenant_pk,
    vector_store_pk,
)
from ..types import DeletedObject, ListPage
from ..types.vector_store import (
    AttributeValue,
    FileContentPage,
    FileContentPart,
    StoreFileError,
    StoreFileErrorCode,
    VectorStoreFile,
    VectorStoreFileCreateParams,
    resolved_chunking,
)
from ..vectors import chunk_keys, index_named
from ..vectors.layout import ATTRIBUTE_PREFIX
from .expiry import EXPIRY_ATTRIBUTES, EXPIRY_KIND_INGESTION, INGESTION_DEADLINE_SECONDS, expiry_attributes
from .files import require_files
from .ingestion import IngestionStarter, default_ingestion
from .pagination import ListParams, to_list_page
from .vector_stores import StoreRecord, counter, load_store, require_active, store_sk

# Files added per transaction: each needs two puts, and the store's counters take one more.
_ATTACH_CHUNK = 45
# What adding a file that is already in the store starts again.
RESTARTABLE = frozenset({"failed", "cancelled"})


def store_file_sk(file_id: str) -> str:
    return FILE_PREFIX + file_id


def _membership_sk(vector_store_id: str) -> str:
    return VECTOR_STORE_PREFIX + vector_store_id


def _chunk_count(stored: StoredDoc) -> int:
    """How many chunks the store file's last ingestion may have written (0 before it began)."""
    return int(stored.attributes.get("chunk_count", 0))


def add_files(
    repo: Repository,
    ingestion: IngestionStarter | None,
    tenant: str,
    vector_store_id: str,
    entries: list[VectorStoreFileCreateParams],
    *,
    param: str = "file_ids[{index}]",
) -> list[str]:
    """:func:`attach_files`, then start the ingestion of the files it added (``ingestion``
    None: this deployment's). A batch attaches and starts on its own (file_batches.py)."""
    added = attach_files(repo, tenant, vector_store_id, entries, param=param)
    if added:
        (ingestion or default_ingestion()).start(tenant, vector_store_id, added)
    return added


def attach_files(
    repo: Repository,
    tenant: str,
    vector_store_id: str,
    entries: list[VectorStoreFileCreateParams],
    *,
    batch_id: str | None = None,
    param: str = "file_ids[{index}]",
) -> list[str]:
    """Add files to a store as ``in_progress``; returns the ids of the files added, for the
    caller to hand to ingestion. A file already in the store is left as it is, unless it failed
    or was cancelled: adding it again starts it again (how a failed file is retried)."""
    record = load_store(repo, tenant, vector_store_id)
    require_active(record)
    ids = list(dict.fromkeys(entry.file_id for entry in entries))
    files = require_files(repo, tenant, ids, param)
    pk = vector_store_pk(tenant, vector_store_id)
    present = repo.get_many([(pk, store_file_sk(file_id)) for file_id in ids])
    unique = {e.file_id: e for e in entries}.values()
    wanted = [e for e in unique if (pk, store_file_sk(e.file_id)) not in present]
    added: list[str] = []
    for entry in unique:
        stored = present.get((pk, store_file_sk(entry.file_id)))
        if stored is None or stored.doc.get("status") not in RESTARTABLE:
            continue
        if _restart(repo, tenant, record, entry, stored, batch_id):
            added.append(entry.file_id)
    for start in range(0, len(wanted), _ATTACH_CHUNK):
        chunk = wanted[start : start + _ATTACH_CHUNK]
        created_at = now()
        operations: list[dict[str, Any]] = []
        for entry in chunk:
            item = VectorStoreFile(
                id=entry.file_id,
                created_at=created_at,
                vector_store_id=vector_store_id,
                status="in_progress",
                chunking_strategy=resolved_chunking(entry.chunking_strategy),
                attributes=entry.attributes or {},
            )
            # In the expiry index until it leaves in_progress: the sweep fails a file that is still
            # in progress at its deadline, whatever happened to its ingestion.
            extra: dict[str, Any] = expiry_attributes(EXPIRY_KIND_INGESTION, created_at + INGESTION_DEADLINE_SECONDS)
            if batch_id:
                extra["batch_id"] = batch_id
            operations.append(
                repo.op_put(
                    pk,
                    store_file_sk(entry.file_id),
                    item.model_dump(mode="json"),
                    file_bytes=files[entry.file_id].bytes,
                    **extra,
                )
            )
            operations.append(
                repo.op_put(
                    file_stores_pk(tenant, entry.file_id),
                    _membership_sk(vector_store_id),
                    {"vector_store_id": vector_store_id},
                )
            )
        bump = {counter("in_progress"): len(chunk), counter("total"): len(chunk)}
        operations.append(repo.op_add(tenant_pk(tenant), store_sk(vector_store_id), bump))
        if batch_id:
            operations.append(repo.op_add(pk, BATCH_PREFIX + batch_id, bump))
        try:
            repo.transact(operations)
        except TransactionConflict:
            # A concurrent request added one of these files (or the store went): one by one.
            for entry in chunk:
                added += attach_files(repo, tenant, vector_store_id, [entry], batch_id=batch_id, param=param)
            continue
        added += [entry.file_id for entry in chunk]
    return added


def _restart(
    repo: Repository,
    tenant: str,
    record: StoreRecord,
    entry: VectorStoreFileCreateParams,
    stored: StoredDoc,
    batch_id: str | None,
) -> bool:
    """A failed or cancelled store file back to ``in_progress``, with the settings it is added
    with now, its old chunks released first; the counters of the store and of its old and new
    batch move in the same transaction. False if it changed meanwhile (someone else restarted it)."""
    vector_store_id = record.store.id
    pk = vector_store_pk(tenant, vector_store_id)
    # The vectors of its last attempt (its parsed text is overwritten when it completes again).
    release_vectors(record, vector_store_id, entry.file_id, _chunk_count(stored))
    old = VectorStoreFile.model_validate(stored.doc)
    moment = now()
    item = old.model_copy(
        update={
            "status": "in_progress",
            "last_error": None,
            "usage_bytes": 0,
            "created_at": moment,
            "chunking_strategy": resolved_chunking(entry.chunking_strategy),
            "attributes": entry.attributes or {},
        }
    )
    attributes: dict[str, Any] = {
        "chunk_count": 0,
        **expiry_attributes(EXPIRY_KIND_INGESTION, moment + INGESTION_DEADLINE_SECONDS),
    }
    remove: list[str] = []
    if batch_id:
        attributes["batch_id"] = batch_id
    elif stored.attributes.get("batch_id"):
        remove.append("batch_id")
    operations = [
        repo.op_save(
            pk,
            store_file_sk(entry.file_id),
            item.model_dump(mode="json"),
            expected_version=stored.version,
            remove=remove,
            **attributes,
        ),
        repo.op_add(
            tenant_pk(tenant),
            store_sk(vector_store_id),
            {counter(old.status): -1, counter("in_progress"): 1, "usage_bytes": -old.usage_bytes},
        ),
    ]
    old_batch = stored.attributes.get("batch_id")
    if old_batch:
        operations.append(
            repo.op_add(pk, BATCH_PREFIX + str(old_batch), {counter(old.status): -1, counter("total"): -1})
        )
    if batch_id:
        operations.append(repo.op_add(pk, BATCH_PREFIX + batch_id, {counter("in_progress"): 1, counter("total"): 1}))
    try:
        repo.transact(operations)
    except TransactionConflict:
        return False
    return True


def load_store_file(repo: Repository, tenant: str, vector_store_id: str, file_id: str) -> StoredDoc:
    stored = repo.get(vector_store_pk(tenant, vector_store_id), store_file_sk(file_id))
    if stored is None:
        load_store(repo, tenant, vector_store_id)  # a 404 for the store first, if it is the store
        raise NotFoundError(f"No file found with id '{file_id}' in vector store '{vector_store_id}'.", param="file_id")
    return stored


def get_store_file(repo: Repository, tenant: str, vector_store_id: str, file_id: str) -> VectorStoreFile:
    return VectorStoreFile.model_validate(load_store_file(repo, tenant, vector_store_id, file_id).doc)


def list_store_files(
    repo: Repository,
    tenant: str,
    vector_store_id: str,
    params: ListParams,
    *,
    status: str | None = None,
    batch_id: str | None = None,
) -> ListPage[VectorStoreFile]:
    load_store(repo, tenant, vector_store_id)
    where = {**({"status": status} if status else {}), **({"batch_id": batch_id} if batch_id else {})}
    page = repo.list(vector_store_pk(tenant, vector_store_id), FILE_PREFIX, **params.query(), where=where or None)
    return to_list_page(page, VectorStoreFile)


def set_status(
    repo: Repository,
    tenant: str,
    vector_store_id: str,
    file_id: str,
    status: str,
    *,
    allowed_from: frozenset[str] = frozenset({"in_progress"}),
    last_error: StoreFileError | None = None,
    usage_bytes: int | None = None,
    stored: StoredDoc | None = None,
) -> VectorStoreFile | None:
    """Move a store file to ``status`` and its store's and batch's counters with it, in one
    transaction; None when the file is gone or not in a status ``allowed_from``.

    ``stored`` is the item as the caller read it: a write conditioned on that version fails if
    anything changed since (a new attribute, a removal), and the caller must look again.
    """
    pk = vector_store_pk(tenant, vector_store_id)
    retry = stored is None
    for _ in range(5):
        current = stored or repo.get(pk, store_file_sk(file_id))
        stored = None
        if current is None or current.doc.get("status") not in allowed_from:
            return None
        item = VectorStoreFile.model_validate(current.doc)
        old_usage = item.usage_bytes
        item.status = status  # type: ignore[assignment]
        item.last_error = last_error
        if usage_bytes is not None:
            item.usage_bytes = usage_bytes
        moves = {
            counter(str(current.doc["status"])): -1,
            counter(status): 1,
            "usage_bytes": item.usage_bytes - old_usage,
        }
        operations = [
            repo.op_save(
                pk,
                store_file_sk(file_id),
                item.model_dump(mode="json"),
                expected_version=current.version,
                remove=EXPIRY_ATTRIBUTES if status != "in_progress" else (),
            ),
            repo.op_add(tenant_pk(tenant), store_sk(vector_store_id), moves),
        ]
        batch_id = current.attributes.get("batch_id")
        if batch_id:
            operations.append(repo.op_add(pk, BATCH_PREFIX + str(batch_id), moves))
        try:
            repo.transact(operations)
        except TransactionConflict as conflict:
            if not retry:
                raise ConcurrentModification(f"{pk}/{file_id}: {conflict.reasons}") from conflict
            continue
        return item
    raise ConcurrentModification(f"vector store file {file_id}: too many concurrent changes")


def mark_failed(
    repo: Repository, tenant: str, vector_store_id: str, file_id: str, code: StoreFileErrorCode, message: str
) -> VectorStoreFile | None:
    """A store file still in progress ends ``failed`` with ``last_error``; None if it had left
    ``in_progress`` meanwhile (completed, cancelled, removed)."""
    error = StoreFileError(code=code, message=message)
    return set_status(repo, tenant, vector_store_id, file_id, "failed", last_error=error)


def update_attributes(
    repo: Repository, tenant: str, vector_store_id: str, file_id: str, attributes: dict[str, AttributeValue] | None
) -> VectorStoreFile:
    """Replace a store file's attributes, in its object and in the metadata of its chunks (so
    filters see them at once). Ingestion still running picks them up before it completes."""
    record = load_store(repo, tenant, vector_store_id)
    pk = vector_store_pk(tenant, vector_store_id)
    for _ in range(5):
        stored = load_store_file(repo, tenant, vector_store_id, file_id)
        item = VectorStoreFile.model_validate(stored.doc).model_copy(update={"attributes": attributes or {}})
        try:
            repo.save(pk, store_file_sk(file_id), item.model_dump(mode="json"), expected_version=stored.version)
        except ConcurrentModification:
            continue
        if item.status == "completed":
            write_chunk_attributes(record, vector_store_id, file_id, _chunk_count(stored), item.attributes or {})
        return item
    raise ConcurrentModification(f"vector store file {file_id}: too many concurrent changes")


def write_chunk_attributes(
    record: StoreRecord, vector_store_id: str, file_id: str, chunk_count: int, attributes: dict[str, AttributeValue]
) -> None:
    keys = chunk_keys(vector_store_id, file_id, chunk_count)
    if keys:
        index_named(record.index).rewrite_metadata(
            keys, {ATTRIBUTE_PREFIX + k: v for k, v in attributes.items()}, remove_prefix=ATTRIBUTE_PREFIX
        )


def release_vectors(record: StoreRecord, vector_store_id: str, file_id: str, chunk_count: int) -> None:
    keys = chunk_keys(vector_store_id, file_id, chunk_count)
    if keys:
        index_named(record.index).delete(keys)


def release_chunks(
    blobs: BlobStore, tenant: str, record: StoreRecord, vector_store_id: str, file_id: str, chunk_count: int
) -> None:
    """Delete a store file's vectors and its parsed text (idempotent)."""
    release_vectors(record, vector_store_id, file_id, chunk_count)
    blobs.delete([store_content_key(tenant, vector_store_id, file_id)])


def remove_file(repo: Repository, blobs: BlobStore, tenant: str, vector_store_id: str, file_id: str) -> bool:
    """Take a file out of a store: its chunks, its text, its item, its membership, its counts.

    The chunks go first: a crash after leaves the item, and a retry finishes the job."""
    record = load_store(repo, tenant, vector_store_id)
    pk = vector_store_pk(tenant, vector_store_id)
    for _ in range(5):
        stored = repo.get(pk, store_file_sk(file_id))
        if stored is None:
            return False
        release_chunks(blobs, tenant, record, vector_store_id, file_id, _chunk_count(stored))
        item = VectorStoreFile.model_validate(stored.doc)
        moves = {counter(item.status): -1, counter("total"): -1, "usage_bytes": -item.usage_bytes}
        try:
            repo.transact(
                [
                    repo.op_delete(pk, store_file_sk(file_id), expected_version=stored.version),
                    repo.op_delete(file_stores_pk(tenant, file_id), _membership_sk(vector_store_id)),
                    repo.op_add(tenant_pk(tenant), store_sk(vector_store_id), moves),
                ]
            )
        except TransactionConflict:
            continue
        return True
    raise ConcurrentModification(f"vector store file {file_id}: too many concurrent changes")


def delete_store_file(
    repo: Repository, blobs: BlobStore, tenant: str, vector_store_id: str, file_id: str
) -> DeletedObject:
    """Take a file out of a store (the file itself stays); a 404 if it is not in it."""
    if not remove_file(repo, blobs, tenant, vector_store_id, file_id):
        load_store_file(repo, tenant, vector_store_id, file_id)  # raises the store's or the file's 404
    return DeletedObject(id=file_id, object="vector_store.file.deleted")


def detach_from_all_stores(repo: Repository, blobs: BlobStore, tenant: str, file_id: str) -> None:
    """Remove a file from every store it is in (the file is being deleted)."""
    for doc in repo.partition(file_stores_pk(tenant, file_id)):
        store_id = str(doc["vector_store_id"])
        try:
            remove_file(repo, blobs, tenant, store_id, file_id)
        except NotFoundError:  # the store was deleted meanwhile
            repo.delete(file_stores_pk(tenant, file_id), _membership_sk(store_id))


def release_all(repo: Repository, blobs: BlobStore, tenant: str, record: StoreRecord, *, remove: bool) -> None:
    """Release every file of a store: their chunks and text, and with ``remove`` their items
    and memberships (the store is being deleted) rather than only their usage (it expired).

    In batches (500 vectors, 1,000 objects, 25 items a call), not file by file: deleting a store
    of thousands of files answers within API Gateway's 29 s."""
    vector_store_id = record.store.id
    pk = vector_store_pk(tenant, vector_store_id)
    files = {sk[len(FILE_PREFIX) :]: s for sk, s in repo.partition_stored(pk).items() if sk.startswith(FILE_PREFIX)}
    keys = [
        key for file_id, stored in files.items() for key in chunk_keys(vector_store_id, file_id, _chunk_count(stored))
    ]
    if keys:
        index_named(record.index).delete(keys)
    blobs.delete([store_content_key(tenant, vector_store_id, file_id) for file_id in files])
    if remove:
        repo.delete_keys((file_stores_pk(tenant, file_id), _membership_sk(vector_store_id)) for file_id in files)
        repo.delete_partition(pk)
        return
    for file_id, stored in files.items():
        if stored.doc.get("usage_bytes"):
            # Its usage is released with the store's below: removing the file later must not
            # take it off the store a second time.
            repo.mutate(pk, store_file_sk(file_id), lambda doc: {**doc, "usage_bytes": 0})
    repo.update_attributes(tenant_pk(tenant), store_sk(vector_store_id), set_values={"usage_bytes": 0})


def file_content(repo: Repository, blobs: BlobStore, tenant: str, vector_store_id: str, file_id: str) -> Download:
    """The text parsed from a store file: the page ingestion stored as JSON (an empty page once
    its store expired)."""
    item = get_store_file(repo, tenant, vector_store_id, file_id)
    if item.status != "completed":
        raise InvalidRequestError(
            f"File {file_id} is {item.status} in vector store {vector_store_id}: its content is available once it "
            "is completed.",
            param="file_id",
        )
    key = store_content_key(tenant, vector_store_id, file_id)
    size = blobs.size(key)
    if size is None:
        return Download(FileContentPage(data=[]).model_dump_json().encode(), None)
    return blobs.download(key, size, content_type="application/json")


def content_page(text: str) -> bytes:
    """What :func:`file_content` serves for a store file of this text."""
    return FileContentPage(data=[FileContentPart(text=text)]).model_dump_json().encode()
