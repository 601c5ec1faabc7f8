"""Images of ``image_file`` message parts, as a vision model takes them: data URLs of the bytes."""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Callable

from aws_lambda_powertools import Logger

from ..blobs import default_blob_store, file_key
from ..errors import NotFoundError
from ..repository import Repository
from ..services.files import get_file

logger = Logger()
# What vision models accept; another file is not sent as an image.
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
# Larger images are refused by the providers (OpenAI and Anthropic take up to about 20 MB).
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def image_loader(repo: Repository, tenant: str) -> Callable[[str], str | None]:
    """A loader of the tenant's image files by id (each read once per turn)."""
    loaded: dict[str, str | None] = {}

    def load(file_id: str) -> str | None:
        if file_id not in loaded:
            loaded[file_id] = _data_url(repo, tenant, file_id)
        return loaded[file_id]

    return load


def _data_url(repo: Repository, tenant: str, file_id: str) -> str | None:
    try:
        file = get_file(repo, tenant, file_id)
    except NotFoundError:
        return None
    # "filename" would clash with the LogRecord attribute of that name (a KeyError that fails the run).
    named = {"file_id": file_id, "file_name": file.filename}
    guessed = mimetypes.guess_type(file.filename)[0]
    if guessed is not None and guessed not in IMAGE_TYPES:
        logger.warning("image_file is not an image", extra=named)
        return None
    if file.bytes > MAX_IMAGE_BYTES:
        logger.warning("image_file is too large for a vision model", extra=named)
        return None
    data = default_blob_store().get(file_key(tenant, file_id))
    mime = _image_type(data)  # the bytes decide: a name may lack an extension, or lie
    if mime is None:
        logger.warning("image_file is not an image", extra=named)
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _image_type(data: bytes) -> str | None:
    """The type of an image vision models take, from its first bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
