"""What expires, when, and the sweep that releases it.

Files with ``expires_after`` and vector stores with ``expires_after`` carry two attributes
beside their object, ``expiry_kind`` and ``expires_at``, which put them in the table's sparse
``ExpiryIndex``. A scheduled function (``ExpiryFunction``) asks that index for what is due and
releases it: an expired file is deleted everywhere; an expired store turns ``expired`` and its
chunks and vectors are deleted. A store's expiry moves with its activity, so the sweep reads
the store again and leaves it if it was used since.

Reads do not wait for the sweep: a store past its ``expires_at`` reads as ``expired`` at once,
and searches and runs refuse it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from ..blobs import BlobStore
from ..ids import now
from ..repository import Repository

logger = Logger()
EXPIRY_KIND_FILE = "file"
EXPIRY_KIND_VECTOR_STORE = "vector_store"
EXPIRY_ATTRIBUTES = ("expiry_kind", "expires_at")


def expiry_attributes(kind: str, expires_at: int | None) -> dict[str, Any]:
    """The attributes that put an object in the expiry index (none if it never expires)."""
    return {"expiry_kind": kind, "expires_at": expires_at} if expires_at is not None else {}


def sweep(repo: Repository, blobs: BlobStore, until: int | None = None) -> dict[str, int]:
    """Release every file and store that expired by ``until`` (default: now); returns counts."""
    from .files import delete_file
    from .vector_stores import expire_vector_store

    moment = now() if until is None else until
    released = {EXPIRY_KIND_FILE: 0, EXPIRY_KIND_VECTOR_STORE: 0}
    for pk, sk in repo.due_to_expire(EXPIRY_KIND_VECTOR_STORE, moment):
        tenant, store_id = _tenant_of(pk), sk.split("#", 1)[1]
        if expire_vector_store(repo, blobs, tenant, store_id, moment):
            released[EXPIRY_KIND_VECTOR_STORE] += 1
    for pk, sk in repo.due_to_expire(EXPIRY_KIND_FILE, moment):
        tenant, file_id = _tenant_of(pk), sk.split("#", 1)[1]
        try:
            delete_file(repo, blobs, tenant, file_id)
            released[EXPIRY_KIND_FILE] += 1
        except Exception:  # one bad file must not stop the sweep; the next one retries it
            logger.exception("could not delete an expired file", extra={"file_id": file_id})
    logger.info("expiry sweep", extra={"until": moment, **released})
    return released


def _tenant_of(pk: str) -> str:
    """``T#<tenant>`` -> tenant."""
    return pk[2:]
