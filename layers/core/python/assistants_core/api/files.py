"""/v1/files and /v1/uploads"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from ..errors import InvalidRequestError
from ..request_size import MAX_REQUEST_BYTES, request_too_large
from ..services import files as service
from ..services import uploads
from ..services.pagination import ListParams
from ..types import ListPage
from ..types.file import (
    DeletedFile,
    FileExpiresAfter,
    FileObject,
    FilePurpose,
    Upload,
    UploadCompleteParams,
    UploadCreateParams,
    UploadPart,
)
from .app import download_response, validation_error
from .dependencies import Blobs, Repo, Tenant

router = APIRouter(prefix="/v1/files")
uploads_router = APIRouter(prefix="/v1/uploads")
PURPOSES: tuple[str, ...] = get_args(FilePurpose)
EXPIRES_AFTER_FIELDS = ("expires_after[anchor]", "expires_after[seconds]")


async def _form(request: Request) -> FormData:
    """The multipart body, refused with a 413 before it is parsed if it is larger than a
    request may be (see :mod:`assistants_core.request_size`)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise request_too_large("file")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError("The request must be multipart/form-data, with the file as 'file'.")
    form = await request.form()
    return form


def _reject_unknown_fields(form: FormData, known: tuple[str, ...]) -> None:
    """A form field the route does not take is a 400, as an unknown JSON field is."""
    if "expires_after" in form and "expires_after" not in known:
        raise InvalidRequestError(
            "Invalid value for 'expires_after': send it as the fields expires_after[anchor] and "
            "expires_after[seconds].",
            param="expires_after",
            code="invalid_value",
        )
    for name in form:
        if name not in known:
            raise InvalidRequestError(
                f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter"
            )


async def _file_field(form: FormData, name: str) -> tuple[bytes, str, str | None]:
    field = form.get(name)
    if not isinstance(field, UploadFile):
        raise InvalidRequestError(
            f"Missing required parameter: '{name}' (a file part of the multipart body).",
            param=name,
            code="missing_required_parameter",
        )
    data = await field.read()
    if len(data) > MAX_REQUEST_BYTES:
        raise request_too_large(name)
    return data, field.filename or "upload", field.content_type


def _expires_after(form: FormData) -> FileExpiresAfter | None:
    """``expires_after[anchor]`` and ``expires_after[seconds]`` (how the SDK sends the object)."""
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    given = {key: value for key, value in (("anchor", anchor), ("seconds", seconds)) if value is not None}
    try:
        return FileExpiresAfter.model_validate(given)
    except ValidationError as error:
        raise validation_error([{**e, "loc": ("expires_after", *e.get("loc", ()))} for e in error.errors()]) from None


# OpenAI's File object has no null fields (the spec types expires_at and status_details as
# plain values), so the routes that answer with a File or an Upload leave None values out.
@router.post("", response_model_exclude_none=True)
async def create_file(request: Request, tenant: Tenant, repo: Repo, blobs: Blobs) -> FileObject:
    form = await _form(request)
    _reject_unknown_fields(form, ("file", "purpose", *EXPIRES_AFTER_FIELDS))
    purpose = form.get("purpose")
    if not isinstance(purpose, str):
        raise InvalidRequestError(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    if purpose not in PURPOSES:
        raise InvalidRequestError(
            f"Invalid value for 'purpose': '{purpose}'. Supported values are: "
            + ", ".join(f"'{p}'" for p in PURPOSES)
            + ".",
            param="purpose",
            code="invalid_value",
        )
    data, filename, content_type = await _file_field(form, "file")
    expires_after = _expires_after(form)
    return await to_thread.run_sync(
        lambda: service.create_file(
            repo,
            blobs,
            tenant,
            filename=filename,
            data=data,
            purpose=purpose,
            content_type=content_type,
            expires_after=expires_after,
        )
    )


@router.get("", response_model=None)
def list_files(
    tenant: Tenant,
    repo: Repo,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> JSONResponse:
    page: ListPage[FileObject] = service.list_files(
        repo, tenant, ListParams(limit=limit, order=order, after=after), purpose
    )
    # The page's first_id/last_id stay (null on an empty page); the files drop their nulls.
    body = page.model_dump(mode="json")
    body["data"] = [file.model_dump(mode="json", exclude_none=True) for file in page.data]
    return JSONResponse(body)


@router.get("/{file_id}", response_model_exclude_none=True)
def get_file(file_id: str, tenant: Tenant, repo: Repo) -> FileObject:
    return service.get_file(repo, tenant, file_id)


@router.delete("/{file_id}")
def delete_file(file_id: str, tenant: Tenant, repo: Repo, blobs: Blobs) -> DeletedFile:
    return service.delete_file(repo, blobs, tenant, file_id)


@router.get("/{file_id}/content", response_model=None)
def file_content(file_id: str, tenant: Tenant, repo: Repo, blobs: Blobs) -> Response:
    return download_response(service.file_content(repo, blobs, tenant, file_id), "application/octet-stream")


# ---------------------------------------------------------------- uploads


@uploads_router.post("", response_model_exclude_none=True)
def create_upload(body: UploadCreateParams, tenant: Tenant, repo: Repo) -> Upload:
    return uploads.create_upload(repo, tenant, body)


@uploads_router.post("/{upload_id}/parts")
async def add_upload_part(upload_id: str, request: Request, tenant: Tenant, repo: Repo, blobs: Blobs) -> UploadPart:
    form = await _form(request)
    _reject_unknown_fields(form, ("data",))
    data, _, _ = await _file_field(form, "data")
    return await to_thread.run_sync(lambda: uploads.add_part(repo, blobs, tenant, upload_id, data))


@uploads_router.post("/{upload_id}/complete", response_model_exclude_none=True)
def complete_upload(upload_id: str, body: UploadCompleteParams, tenant: Tenant, repo: Repo, blobs: Blobs) -> Upload:
    return uploads.complete_upload(repo, blobs, tenant, upload_id, body)


@uploads_router.post("/{upload_id}/cancel", response_model_exclude_none=True)
def cancel_upload(upload_id: str, tenant: Tenant, repo: Repo, blobs: Blobs) -> Upload:
    return uploads.cancel_upload(repo, blobs, tenant, upload_id)
