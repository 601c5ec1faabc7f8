"""The Uploads API: a large file sent in parts, each small enough for one request.

Each part is an S3 object of its own, with an item that records its size. Completing the
upload joins the parts in the order ``part_ids`` gives into the file's object
(:meth:`BlobStore.join`), checks the size and the optional MD5, and creates the File.

The File's id is chosen when the upload is created, so completing twice (a client retry after
a lost answer) writes the same object and finds the same File instead of making a second one.
An upload is open for an hour, as OpenAI's were; parts left by an upload that expired or was
cancelled are deleted by the bucket's lifecycle rule.
"""

from __future__ import annotations

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
        ttl=upload.expires_at + 7 * 24 * 3600,
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
    repo.create(upload_pk(tenant, upload_id), PART_PREFIX + part.id, part.model_dump(mode="json"), size=len(data))
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
    file = FileObject.model_validate_json(str(stored.attributes["planned_file"]))
    key = file_key(tenant, file.id)
    md5 = blobs.join(
        [(part_key(tenant, upload_id, part_id), sizes[part_id]) for part_id in params.part_ids],
        key,
        content_type=str(stored.attributes.get("mime_type") or "") or None,
    )
    if params.md5 is not None and params.md5.lower() != md5:
        blobs.delete([key])
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
