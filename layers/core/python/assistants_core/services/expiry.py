"""What expires, when, and the sweep that releases it.

Files with ``expires_after`` and vector stores with ``expires_after`` carry two attributes
beside their object, ``expiry_kind`` and ``expires_at``, which put them in the table's sparse
``ExpiryIndex``. A scheduled function (``ExpiryFunction``) asks that index for what is due and
releases it: an expired file is deleted everywhere; an expired store turns ``expired`` and its
chunks and vectors are deleted. A store's expiry moves with its activity, so the sweep reads
the store again and leaves it if it was used since. Store files are in the index too while they
are in progress, with a deadline: one still in progress past it is failed, whatever became of
its ingestion.

Reads do not wait for the sweep: a store past its ``expires_at`` reads as ``expired`` at once,
and searches and runs refuse it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from ..blobs import BlobStore
from ..ids import now
from ..repository import Repository, object_id_of, tenant_of, vector_store_of

logger = Logger()
EXPIRY_KIND_FILE = "file"
EXPIRY_KIND_VECTOR_STORE = "vector_store"
EXPIRY_KIND_INGESTION = "ingestion"  # a store file's deadline to leave in_progress
EXPIRY_ATTRIBUTES = ("expiry_kind", "expires_at")
# The ingest state machine retries a file and then fails it, so a file normally leaves
# in_progress within an hour of its turn; a large batch queues its files (five at a time).
# Past this deadline the sweep fails it, so that no file stays in progress for ever.
INGESTION_DEADLINE_SECONDS = 6 * 3600


def expiry_attributes(kind: str, expires_at: int | None) -> dict[str, Any]:
    """The attributes that put an object in the expiry index (none if it never expires)."""
    return {"expiry_kind": kind, "expires_at": expires_at} if expires_at is not None else {}


def sweep(repo: Repository, blobs: BlobStore, until: int | None = None) -> dict[str, int]:
    """Release every file and store that expired by ``until`` (default: now); returns counts."""
    from .files import delete_file
    from .vector_stores import expire_vector_store

    moment = now() if until is None else until
    released = {EXPIRY_KIND_FILE: 0, EXPIRY_KIND_VECTOR_STORE: 0, EXPIRY_KIND_INGESTION: 0}

    def release(kind: str, pk: str, sk: str) -> bool:
        if kind == EXPIRY_KIND_INGESTION:
            return _fail_overdue_ingestion(repo, pk, sk)
        tenant, object_id = tenant_of(pk), object_id_of(sk)
        if kind == EXPIRY_KIND_VECTOR_STORE:
            return expire_vector_store(repo, blobs, tenant, object_id, moment)
        delete_file(repo, blobs, tenant, object_id)
        return True

    for kind in (EXPIRY_KIND_INGESTION, EXPIRY_KIND_VECTOR_STORE, EXPIRY_KIND_FILE):
        for pk, sk in repo.due_to_expire(kind, moment):
            try:
                if release(kind, pk, sk):
                    released[kind] += 1
            except Exception:  # one object must not stop the sweep: the next sweep tries it again
                logger.exception("could not release an expired object", extra={"kind": kind, "key": f"{pk}/{sk}"})
    logger.info("expiry sweep", extra={"until": moment, **released})
    return released


def _fail_overdue_ingestion(repo: Repository, pk: str, sk: str) -> bool:
    """A store file past its deadline and still in progress: its ingestion was lost."""
    from .vector_store_files import mark_failed

    tenant, vector_store_id = vector_store_of(pk)
    file_id = object_id_of(sk)
    message = "The file's processing did not finish; add it again."
    failed = mark_failed(repo, tenant, vector_store_id, file_id, "server_error", message)
    if failed is not None:
        logger.warning("failed a file whose ingestion never finished", extra={"file_id": file_id})
    return failed is not None
