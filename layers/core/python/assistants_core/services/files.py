"""Files: upload, list, read, delete, and their bytes.

A file's bytes are an S3 object (:mod:`assistants_core.blobs`); its File object is an item
under the tenant. The object is written before the item, so a file that can be listed always
has its bytes; a crash between the two leaves an object nothing points at, never the reverse.
"""

from __future__ import annotations

from typing import Any

from ..blobs import BlobStore, Download, file_key
from ..errors import InvalidRequestError, NotFoundError
from ..ids import new_id, now
from ..repository import FILE_PREFIX, Repository, tenant_pk
from ..types import ListPage
from ..types.file import DeletedFile, FileExpiresAfter, FileObject
from .expiry import EXPIRY_KIND_FILE, expiry_attributes
from .pagination import ListParams, to_list_page


def file_sk(file_id: str) -> str:
    return FILE_PREFIX + file_id


def new_file(filename: str, size: int, purpose: str, expires_after: FileExpiresAfter | None = None) -> FileObject:
    created_at = now()
    return FileObject(
        id=new_id("file", "-"),
        bytes=size,
        created_at=created_at,
        expires_at=created_at + expires_after.seconds if expires_after else None,
        filename=filename,
        purpose=purpose,
    )


def _attributes(file: FileObject) -> dict[str, Any]:
    """What lists filter on (purpose) and the expiry index reads, beside the File object."""
    return {"purpose": file.purpose, **expiry_attributes(EXPIRY_KIND_FILE, file.expires_at)}


def record_file(repo: Repository, tenant: str, file: FileObject) -> None:
    """Store the File object of bytes already in S3."""
    repo.create(tenant_pk(tenant), file_sk(file.id), file.model_dump(mode="json"), **_attributes(file))


def op_record_file(repo: Repository, tenant: str, file: FileObject) -> dict[str, Any]:
    """:func:`record_file` as an operation of a transaction."""
    return repo.op_put(tenant_pk(tenant), file_sk(file.id), file.model_dump(mode="json"), **_attributes(file))


def create_file(
    repo: Repository,
    blobs: BlobStore,
    tenant: str,
    *,
    filename: str,
    data: bytes,
    purpose: str,
    content_type: str | None = None,
    expires_after: FileExpiresAfter | None = None,
) -> FileObject:
    if not data:
        raise InvalidRequestError("The file is empty: upload a file with content.", param="file", code="empty_file")
    file = new_file(filename, len(data), purpose, expires_after)
    blobs.put(file_key(tenant, file.id), data, content_type=content_type)
    record_file(repo, tenant, file)
    return file


def get_file(repo: Repository, tenant: str, file_id: str) -> FileObject:
    doc = repo.get_doc(tenant_pk(tenant), file_sk(file_id))
    if doc is None:
        raise NotFoundError.for_object("file", file_id, param="file_id")
    return FileObject.model_validate(doc)


def require_files(repo: Repository, tenant: str, file_ids: list[str], param: str) -> dict[str, FileObject]:
    """The files by id; a 404 naming the first one that does not exist (or is another tenant's).

    ``param`` names where each id sits in the request, with ``{index}`` for its position
    (``file_ids[{index}]``)."""
    found = repo.get_many([(tenant_pk(tenant), file_sk(file_id)) for file_id in file_ids])
    files: dict[str, FileObject] = {}
    for index, file_id in enumerate(file_ids):
        stored = found.get((tenant_pk(tenant), file_sk(file_id)))
        if stored is None:
            raise NotFoundError.for_object("file", file_id, param=param.format(index=index))
        files[file_id] = FileObject.model_validate(stored.doc)
    return files


def list_files(repo: Repository, tenant: str, params: ListParams, purpose: str | None = None) -> ListPage[FileObject]:
    page = repo.list(tenant_pk(tenant), FILE_PREFIX, **params.query(), where={"purpose": purpose} if purpose else None)
    return to_list_page(page, FileObject)


def delete_file(repo: Repository, blobs: BlobStore, tenant: str, file_id: str) -> DeletedFile:
    """Delete a file everywhere: its chunks and vectors in every store, its bytes, its object.

    In that order, so a retry after a crash finds the file and finishes the job.
    """
    from .vector_store_files import detach_from_all_stores

    get_file(repo, tenant, file_id)
    detach_from_all_stores(repo, blobs, tenant, file_id)
    blobs.delete([file_key(tenant, file_id)])
    repo.delete(tenant_pk(tenant), file_sk(file_id))
    return DeletedFile(id=file_id)


def file_content(repo: Repository, blobs: BlobStore, tenant: str, file_id: str) -> Download:
    file = get_file(repo, tenant, file_id)
    return blobs.download(file_key(tenant, file_id), file.bytes, filename=file.filename)
