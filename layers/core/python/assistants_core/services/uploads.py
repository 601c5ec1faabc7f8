"""The Uploads API: a large file sent in parts, each small enough for one request.

Each part is an S3 object of its own, with an item that records its size. Completing the
upload joins the parts in the order ``part_ids`` gives into the file's object
(:meth:`BlobStore.join`), checks the size and the optional MD5, and creates the File.

The File's id is chosen when the upload is created, so completing twice (a client retry after
a lost answer) finds the same File instead of making a second one. One completion at a time
joins the parts (a claim on the upload, with a lease): another request completing it meanwhile
is refused, and the same request retried while it runs waits for its outcome.
An upload is open for an hour, as OpenAI's were; parts left by an upload that expired or was
cancelled are deleted by the bucket's lifecycle rule.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time

from ..blobs import UPLOAD_PART_TAG, BlobStore, file_key, part_key
from ..errors import ConflictError, InvalidRequestError, NotFoundError
from ..ids import new_id, now
from ..repository import (
    PART_PREFIX,
    UPLOAD_PREFIX,
    ConcurrentModification,
    Repository,
    StoredDoc,
    TransactionConflict,
    tenant_pk,
    upload_pk,
)
from ..types.file import FileObject, Upload, UploadCompleteParams, UploadCreateParams, UploadPart
from .files import new_file, op_record_file

UPLOAD_LIFETIME_SECONDS = 3600
# One completion joins an upload's parts at a time; its claim lapses after this (a join of
# 512 MB takes far less, and the function stops at 29 s).
COMPLETION_LEASE_SECONDS = 120
RETRY_WAIT_SECONDS = 20  # how long a retried completion waits for the one still running
_CLAIM_ATTRIBUTES = ["completing", "completing_until"]
# An upload's items (the upload and its parts) are kept this long past its expiry, then
# DynamoDB's TTL removes them: parts of an upload that was never completed or cancelled too.
RETENTION_SECONDS = 7 * 24 * 3600


def _sk(upload_id: str) -> str:
    return UPLOAD_PREFIX + upload_id


def create_upload(repo: Repository, tenant: str, params: UploadCreateParams) -> Upload:
    created_at = now()
    upload = Upload(
        id=new_id("upload"),
        bytes=params.bytes,
        created_at=created_at,
        expires_at=created_at + UPLOAD_LIFETIME_SECONDS,
        filename=params.filename,
        purpose=params.purpose,
        status="pending",
    )
    file = new_file(params.filename, params.bytes, params.purpose, params.expires_after)
    repo.create(
        tenant_pk(tenant),
        _sk(upload.id),
        upload.model_dump(mode="json"),
        ttl=upload.expires_at + RETENTION_SECONDS,
        planned_file=file.model_dump_json(),
        mime_type=params.mime_type,
    )
    return upload


def _load(repo: Repository, tenant: str, upload_id: str) -> tuple[Upload, StoredDoc]:
    stored = repo.get(tenant_pk(tenant), _sk(upload_id))
    if stored is None:
        raise NotFoundError.for_object("upload", upload_id, param="upload_id")
    upload = Upload.model_validate(stored.doc)
    if upload.status == "pending" and now() >= upload.expires_at:
        upload.status = "expired"
    return upload, stored


def _require_pending(upload: Upload) -> None:
    if upload.status != "pending":
        raise ConflictError(f"Upload {upload.id} is {upload.status}: it takes no more parts.", param="upload_id")


def add_part(repo: Repository, blobs: BlobStore, tenant: str, upload_id: str, data: bytes) -> UploadPart:
    upload, _ = _load(repo, tenant, upload_id)
    _require_pending(upload)
    if not data:
        raise InvalidRequestError("The part is empty: send the part's bytes as 'data'.", param="data")
    part = UploadPart(id=new_id("part"), created_at=now(), upload_id=upload_id)
    blobs.put(part_key(tenant, upload_id, part.id), data, tagging=UPLOAD_PART_TAG)
    repo.create(
        upload_pk(tenant, upload_id),
        PART_PREFIX + part.id,
        part.model_dump(mode="json"),
        ttl=upload.expires_at + RETENTION_SECONDS,
        size=len(data),
    )
    return part


def complete_upload(
    repo: Repository, blobs: BlobStore, tenant: str, upload_id: str, params: UploadCompleteParams
) -> Upload:
    upload, stored = _load(repo, tenant, upload_id)
    if upload.status == "completed":
        return upload  # a retry of a completion that succeeded
    _require_pending(upload)
    sizes = _part_sizes(repo, tenant, upload_id)
    seen: set[str] = set()
    for index, part_id in enumerate(params.part_ids):
        if part_id not in sizes:
            raise InvalidRequestError(
                f"No part found with id '{part_id}' in upload {upload_id}.", param=f"part_ids[{index}]"
            )
        if part_id in seen:
            raise InvalidRequestError(f"Part '{part_id}' is listed twice.", param=f"part_ids[{index}]")
        seen.add(part_id)
    total = sum(sizes[part_id] for part_id in params.part_ids)
    if total != upload.bytes:
        raise InvalidRequestError(
            f"The parts hold {total} bytes, but the upload was created for {upload.bytes} bytes.",
            param="part_ids",
            code="invalid_value",
        )
    request = hashlib.sha256(json.dumps([params.part_ids, params.md5]).encode()).hexdigest()
    claimed = _claim(repo, tenant, upload_id, request)
    if claimed is not None:
        return claimed  # the same request, retried while it ran: its outcome
    file = FileObject.model_validate_json(str(stored.attributes["planned_file"]))
    key = file_key(tenant, file.id)
    expected_md5 = params.md5.lower() if params.md5 is not None else None
    try:
        md5 = blobs.join(
            [(part_key(tenant, upload_id, part_id), sizes[part_id]) for part_id in params.part_ids],
            key,
            content_type=str(stored.attributes.get("mime_type") or "") or None,
            expected_md5=expected_md5,
        )
    except BaseException:
        _release(repo, tenant, upload_id)
        raise
    if expected_md5 is not None and expected_md5 != md5:
        _release(repo, tenant, upload_id)  # nothing was written: the client may complete again
        raise InvalidRequestError(
            f"The MD5 of the joined parts is {md5}, not {params.md5}.", param="md5", code="checksum_mismatch"
        )
    completed = upload.model_copy(update={"status": "completed", "file": file})
    try:
        repo.transact(
            [
                repo.op_save(
                    tenant_pk(tenant),
                    _sk(upload_id),
                    completed.model_dump(mode="json"),
                    expected_version=stored.version,
                    remove=_CLAIM_ATTRIBUTES,
                ),
                op_record_file(repo, tenant, file),
            ]
        )
    except (TransactionConflict, ConcurrentModification):
        current, _ = _load(repo, tenant, upload_id)
        if current.status == "completed":
            return current
        raise ConflictError(f"Upload {upload_id} changed while it was completed; try again.") from None
    _discard_parts(repo, blobs, tenant, upload_id, list(sizes))
    return completed


def _claim(repo: Repository, tenant: str, upload_id: str, request: str) -> Upload | None:
    """Make this request the one completion that joins the parts (the file's object has one
    key: two joins in different orders must not overwrite each other). A claim lapses after
    COMPLETION_LEASE_SECONDS, so a completion that crashed does not lock the upload.

    Returns None once claimed. If the same request holds the claim (the SDK retried it while
    it ran), waits for its outcome and returns it; another request's claim is a 400."""
    from boto3.dynamodb.conditions import Attr

    moment = now()
    try:
        repo.update_attributes(
            tenant_pk(tenant),
            _sk(upload_id),
            set_values={"completing": request, "completing_until": moment + COMPLETION_LEASE_SECONDS},
            condition=Attr("status").eq("pending")
            & (Attr("completing_until").not_exists() | Attr("completing_until").lt(moment)),
        )
        return None
    except ConcurrentModification:
        pass
    deadline = time.monotonic() + RETRY_WAIT_SECONDS
    while True:
        upload, stored = _load(repo, tenant, upload_id)
        if upload.status == "completed":
            return upload
        _require_pending(upload)
        if stored.attributes.get("completing") != request:
            raise ConflictError(
                f"Upload {upload_id} is being completed by another request; wait for it or cancel the upload.",
                param="upload_id",
            )
        if time.monotonic() > deadline:
            raise ConflictError(f"Upload {upload_id} is still being completed; try again shortly.", param="upload_id")
        time.sleep(0.5)


def _release(repo: Repository, tenant: str, upload_id: str) -> None:
    with contextlib.suppress(ConcurrentModification):
        repo.update_attributes(tenant_pk(tenant), _sk(upload_id), remove=_CLAIM_ATTRIBUTES)


def cancel_upload(repo: Repository, blobs: BlobStore, tenant: str, upload_id: str) -> Upload:
    upload, stored = _load(repo, tenant, upload_id)
    if upload.status == "cancelled":
        return upload
    _require_pending(upload)
    cancelled = upload.model_copy(update={"status": "cancelled"})
    try:
        repo.save(tenant_pk(tenant), _sk(upload_id), cancelled.model_dump(mode="json"), expected_version=stored.version)
    except ConcurrentModification:
        raise ConflictError(f"Upload {upload_id} changed while it was cancelled; try again.") from None
    _discard_parts(repo, blobs, tenant, upload_id, list(_part_sizes(repo, tenant, upload_id)))
    return cancelled


def _part_sizes(repo: Repository, tenant: str, upload_id: str) -> dict[str, int]:
    stored = repo.partition_stored(upload_pk(tenant, upload_id))
    return {sk[len(PART_PREFIX) :]: int(item.attributes.get("size", 0)) for sk, item in stored.items()}


def _discard_parts(repo: Repository, blobs: BlobStore, tenant: str, upload_id: str, part_ids: list[str]) -> None:
    """Delete the parts' objects and items (the lifecycle rule catches what a crash leaves)."""
    blobs.delete([part_key(tenant, upload_id, part_id) for part_id in part_ids])
    repo.delete_partition(upload_pk(tenant, upload_id))
