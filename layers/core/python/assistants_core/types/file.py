"""The file object, the Uploads API's upload and part objects, and their parameters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import ObjectModel, RequestModel

# What a file may be uploaded for (CreateFileRequest); ``assistants_output`` is ours to write.
FilePurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision"]
# OpenAI's largest file: what the Uploads API may assemble.
MAX_FILE_BYTES = 512 * 1024 * 1024


class FileExpiresAfter(RequestModel):
    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=3600, le=2_592_000)]


class FileObject(ObjectModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None


class DeletedFile(ObjectModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class UploadCreateParams(RequestModel):
    filename: Annotated[str, Field(min_length=1, max_length=512)]
    purpose: UploadPurpose
    bytes: Annotated[int, Field(ge=1, le=MAX_FILE_BYTES)]
    mime_type: Annotated[str, Field(min_length=1, max_length=255)]
    expires_after: FileExpiresAfter | None = None


class UploadCompleteParams(RequestModel):
    part_ids: Annotated[list[str], Field(min_length=1, max_length=10_000)]
    md5: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")] | None = None


class Upload(ObjectModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None = None


class UploadPart(ObjectModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str
