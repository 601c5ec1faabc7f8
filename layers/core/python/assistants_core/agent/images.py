"""Images of ``image_file`` message parts, as a vision model takes them: data URLs of the bytes."""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Callable

from aws_lambda_powertools import Logger

from ..blobs import default_blob_store, file_key
from ..repository import default_repository, tenant_pk
from ..services.files import file_sk

logger = Logger()
# What vision models accept; another file is not sent as an image.
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def image_loader(tenant: str) -> Callable[[str], str | None]:
    """A loader of the tenant's image files by id (each read once per turn)."""
    loaded: dict[str, str | None] = {}

    def load(file_id: str) -> str | None:
        if file_id not in loaded:
            loaded[file_id] = _data_url(tenant, file_id)
        return loaded[file_id]

    return load


def _data_url(tenant: str, file_id: str) -> str | None:
    doc = default_repository().get_doc(tenant_pk(tenant), file_sk(file_id))
    if doc is None:
        return None
    mime = mimetypes.guess_type(str(doc.get("filename", "")))[0]
    if mime not in IMAGE_TYPES:
        logger.warning("image_file is not an image", extra={"file_id": file_id, "filename": doc.get("filename")})
        return None
    data = default_blob_store().get(file_key(tenant, file_id))
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
