"""File bytes in S3: every object key of the files bucket, and the few operations on them.

Keys start with the tenant (``t/<tenant>/...``), so a bucket policy, a lifecycle rule or an
audit can scope by tenant, and no key built for one tenant can name another's object:

========================  ================================================
object                    key
========================  ================================================
a file's bytes            ``t/<tenant>/files/<file_id>``
a part of an upload       ``t/<tenant>/uploads/<upload_id>/<part_id>``
a store file's content   ``t/<tenant>/vector_stores/<vs_id>/<file_id>.json``
an item's large value     ``t/<tenant>/items/<partition>/<sort key>/<attribute>/<version>.<nonce>.json``
a large run event         ``t/<tenant>/events/<partition>/<nonce>.json``
a large idempotent answer ``t/<tenant>/answers/<nonce>.z``
========================  ================================================

A table item's attribute too large to keep inline (a long message, a run with long
instructions: :mod:`assistants_core.repository.content`) lives at a key of its own for each
version written, so a reader never sees a half-written value; ``<partition>`` is the item's
partition key after the tenant (``_`` for the tenant's own partition), URL-quoted. A large run
event is tagged ``kind=run-event``: the bucket's lifecycle rule deletes it after its log item's
TTL. An answer kept for an ``Idempotency-Key`` that its record cannot hold is tagged
``kind=idempotent-answer``, deleted after its record's TTL the same way.

A store file's content is kept as the JSON page its content endpoint answers with, so a large
one can be served by a redirect to S3 as it is, like a large file's bytes.

Parts of an upload are tagged ``kind=upload-part``: the bucket's lifecycle rule deletes any
that a cancelled or abandoned upload left behind.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .config import boto_config, settings

UPLOAD_PART_TAG = "kind=upload-part"
RUN_EVENT_TAG = "kind=run-event"
IDEMPOTENT_ANSWER_TAG = "kind=idempotent-answer"
# A buffered Lambda response carries at most 6 MB (binary bodies grow by a third in base64):
# larger content is a redirect to a short-lived S3 URL, which the SDKs follow.
INLINE_BYTES = 4 * 1024 * 1024
# S3 multipart parts must be at least 5 MiB (but the last); parts of an upload are smaller (each
# came in one request), so consecutive parts are joined into pieces of at least this size.
JOIN_PIECE_BYTES = 8 * 1024 * 1024
JOIN_WINDOW = 8  # pieces read and written at once: bounds memory to about 8 x 12 MiB
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


def _tenant(tenant: str) -> str:
    return "t/" + quote(tenant, safe="")


def file_key(tenant: str, file_id: str) -> str:
    return f"{_tenant(tenant)}/files/{file_id}"


def part_key(tenant: str, upload_id: str, part_id: str) -> str:
    return f"{_tenant(tenant)}/uploads/{upload_id}/{part_id}"


def store_content_key(tenant: str, vector_store_id: str, file_id: str) -> str:
    return f"{_tenant(tenant)}/vector_stores/{vector_store_id}/{file_id}.json"


def item_content_prefix(tenant: str, partition: str, sort_key: str | None = None) -> str:
    """Where the large values of one partition's items (or of one item) live."""
    base = f"{_tenant(tenant)}/items/{quote(partition or '_', safe='')}/"
    return base if sort_key is None else f"{base}{quote(sort_key, safe='')}/"


def item_content_key(tenant: str, partition: str, sort_key: str, attribute: str, version: int) -> str:
    """A new key for one version of an item's attribute: never reused, so a reader of the item
    at another version never sees this value, and versions sort by name."""
    return f"{item_content_prefix(tenant, partition, sort_key)}{attribute}/{version:010d}.{uuid.uuid4().hex}.json"


def item_content_version(key: str) -> int | None:
    """The item version an :func:`item_content_key` was written for (None for another key)."""
    version = key.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(version) if "/items/" in key and version.isdigit() else None


def event_content_key(tenant: str, partition: str) -> str:
    return f"{_tenant(tenant)}/events/{quote(partition, safe='')}/{uuid.uuid4().hex}.json"


def idempotent_answer_key(tenant: str) -> str:
    """An answer kept for an Idempotency-Key that its DynamoDB record cannot hold (zlib)."""
    return f"{_tenant(tenant)}/answers/{uuid.uuid4().hex}.z"


@dataclass(frozen=True)
class Download:
    """An object's bytes, or where to fetch them when they are too large for one response."""

    data: bytes | None
    redirect_url: str | None


@dataclass(frozen=True)
class Piece:
    """A run of an upload's parts that becomes one S3 multipart part."""

    number: int
    keys: list[str]


class BlobStore:
    def __init__(self, bucket: str | None = None, client: Any = None) -> None:
        self.bucket = bucket or settings().files_bucket
        # SigV4 also for presigned URLs: botocore would sign them with SigV2 in the older regions
        # (us-east-1 among them), which S3 refuses for every bucket created after June 2020.
        self.client = client or boto3.client("s3", config=boto_config().merge(Config(signature_version="s3v4")))

    def put(self, key: str, data: bytes, *, content_type: str | None = None, tagging: str | None = None) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        if tagging:
            kwargs["Tagging"] = tagging
        self.client.put_object(**kwargs)

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2, page after page)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [str(entry["Key"]) for page in pages for entry in page.get("Contents", [])]

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )

    def download(
        self, key: str, size: int, *, filename: str | None = None, content_type: str | None = None
    ) -> Download:
        """The object of ``size`` bytes inline up to INLINE_BYTES, else a presigned URL of it."""
        if size <= INLINE_BYTES:
            return Download(self.get(key), None)
        return Download(None, self.presigned_get(key, filename=filename, content_type=content_type))

    def presigned_get(
        self, key: str, *, filename: str | None = None, content_type: str | None = None, expires_in: int = 300
    ) -> str:
        """A short-lived URL that serves the object (as a download named ``filename``, if given)."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if filename is not None:
            params["ResponseContentDisposition"] = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        if content_type is not None:
            params["ResponseContentType"] = content_type
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in))

    def join(
        self,
        parts: list[tuple[str, int]],
        dest: str,
        *,
        content_type: str | None = None,
        expected_md5: str | None = None,
    ) -> str:
        """Write the concatenation of ``parts`` ((key, size), in order) to ``dest``; returns its MD5.

        One part is copied. More are joined by an S3 multipart upload whose pieces are runs of
        consecutive parts of at least JOIN_PIECE_BYTES, read and written JOIN_WINDOW at a time
        in parallel, and hashed in order on the way (the Uploads API's optional ``md5``).
        With ``expected_md5`` (lowercase hex), a concatenation of another MD5 is never written:
        ``dest`` is left as it was (another completion of the same upload may have written it).
        """
        digest = hashlib.md5(usedforsecurity=False)
        if len(parts) == 1:
            data = self.get(parts[0][0])
            digest.update(data)
            if expected_md5 is None or digest.hexdigest() == expected_md5:
                self.put(dest, data, content_type=content_type)
            return digest.hexdigest()
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": dest}
        if content_type:
            kwargs["ContentType"] = content_type
        upload_id = self.client.create_multipart_upload(**kwargs)["UploadId"]
        try:
            written: list[dict[str, Any]] = []
            with ThreadPoolExecutor(max_workers=JOIN_WINDOW, thread_name_prefix="join") as pool:
                for window in _windows(_pieces(parts), JOIN_WINDOW):
                    datas = list(pool.map(self._read_piece, window))
                    for data in datas:
                        digest.update(data)
                    numbers = [piece.number for piece in window]
                    written += pool.map(lambda n, d: self._write_piece(dest, upload_id, n, d), numbers, datas)
            if expected_md5 is not None and digest.hexdigest() != expected_md5:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=dest, UploadId=upload_id)
                return digest.hexdigest()
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=dest, UploadId=upload_id, MultipartUpload={"Parts": written}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=dest, UploadId=upload_id)
            raise
        return digest.hexdigest()

    def _read_piece(self, piece: Piece) -> bytes:
        return b"".join(self.get(key) for key in piece.keys)

    def _write_piece(self, dest: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        response = self.client.upload_part(
            Bucket=self.bucket, Key=dest, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": response["ETag"]}


def _pieces(parts: list[tuple[str, int]]) -> list[Piece]:
    pieces: list[Piece] = []
    keys: list[str] = []
    size = 0
    for key, part_size in parts:
        keys.append(key)
        size += part_size
        if size >= JOIN_PIECE_BYTES:
            pieces.append(Piece(len(pieces) + 1, keys))
            keys, size = [], 0
    if keys:
        pieces.append(Piece(len(pieces) + 1, keys))
    return pieces


def _windows(pieces: list[Piece], size: int) -> Iterator[list[Piece]]:
    for start in range(0, len(pieces), size):
        yield pieces[start : start + size]


@lru_cache(maxsize=1)
def default_blob_store() -> BlobStore:
    """The files bucket of this deployment; one client per Lambda container."""
    return BlobStore()
