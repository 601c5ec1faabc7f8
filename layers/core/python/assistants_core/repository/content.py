"""Large values of table items, kept in S3 with a pointer in the item.

DynamoDB items hold at most 400 KB, and the API accepts more: instructions of 256,000
characters (up to 1 MB of UTF-8), messages and tool outputs of megabytes, answers of 100k
tokens. So any string attribute (``doc`` above all, also ``tool_outputs``, ``code_results``,
``search_arguments``) over INLINE_BYTES is written to the files bucket first, under a key of
its own for each version (:func:`assistants_core.blobs.item_content_key`), and the item gets
``<name>_s3`` = ``{key, bytes, sha256}`` in its place: every item stays under about 300 KB
(at most three such attributes). Readers resolve pointers (in parallel for a page) and check
size and hash; one that finds the object gone (a newer write replaced it after the item was
read) raises StaleContent and reads the item again.

Cleanup: a write that succeeds deletes the objects older versions of the same attributes
left; a single write that fails deletes what it put (a failed transaction keeps them: its
caller may retry the same operations). An item that ever had a pointer carries ``offloaded``,
so deleting it deletes its prefix; deleting a partition (a thread) always deletes the
partition's prefix, with whatever failed writes left there. A value that shrinks back inline
leaves its last object until then. Large run events go the same way (:mod:`.run_log`), tagged for the
bucket's lifecycle rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ..blobs import (
    RUN_EVENT_TAG,
    BlobStore,
    default_blob_store,
    event_content_key,
    item_content_key,
    item_content_prefix,
    item_content_version,
)
from .keys import split_pk

logger = Logger()
# A value over this many bytes goes to S3; with at most three per item, an item stays well
# under DynamoDB's 400 KB (409,600 bytes, names and values).
INLINE_BYTES = 100_000
POINTER_SUFFIX = "_s3"
OFFLOADED = "offloaded"  # set on an item once any of its values went to S3; never removed
# Keys a write put in S3, carried in a transaction operation until the write's outcome is known.
CONTENT_KEYS = "ContentKeys"
_PARALLEL = 16


class StaleContent(Exception):
    """An item pointed at an object a newer write has since replaced: read the item again."""


def pointer_of(name: str) -> str:
    return name + POINTER_SUFFIX


def is_large(value: Any) -> bool:
    # Cheap first: a string of fewer characters than INLINE_BYTES / 4 cannot be that many bytes.
    return isinstance(value, str) and len(value) * 4 > INLINE_BYTES and len(value.encode()) > INLINE_BYTES


class ContentStore:
    """The S3 side of the repository; the bucket client is made on first use only."""

    def __init__(self, blobs: BlobStore | None = None) -> None:
        self._blobs = blobs

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            self._blobs = default_blob_store()
        return self._blobs

    # ------------------------------------------------------------ writes

    def offload(self, pk: str, sk: str, version: int, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``values`` with each large string replaced by its pointer (its object written first),
        and the keys written. A key outside every tenant is never offloaded."""
        large = {name: value.encode() for name, value in values.items() if is_large(value)}
        place = split_pk(pk)
        if not large or place is None:
            return values, []
        tenant, partition = place
        keys = {name: item_content_key(tenant, partition, sk, name, version) for name in large}
        self._put_all([(keys[name], data, None) for name, data in large.items()])
        kept = {name: value for name, value in values.items() if name not in large}
        for name, data in large.items():
            kept[pointer_of(name)] = _pointer(keys[name], data)
        kept[OFFLOADED] = True
        return kept, list(keys.values())

    def offload_event(self, pk: str, data: str) -> dict[str, Any] | None:
        """Write one large event's JSON to S3; its pointer (None when it fits an item)."""
        place = split_pk(pk)
        if not is_large(data) or place is None:
            return None
        key = event_content_key(*place)
        encoded = data.encode()
        self._put_all([(key, encoded, RUN_EVENT_TAG)])
        return _pointer(key, encoded)

    def _put_all(self, objects: list[tuple[str, bytes, str | None]]) -> None:
        def put(entry: tuple[str, bytes, str | None]) -> None:
            key, data, tag = entry
            self.blobs.put(key, data, content_type="application/json", tagging=tag)

        if len(objects) == 1:
            put(objects[0])
            return
        with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(objects))) as pool:
            list(pool.map(put, objects))

    def settled(self, written: Iterable[str], *, succeeded: bool) -> None:
        """After a write: drop what it put if it failed, else what older versions left.

        Never raises: the write's outcome stands, and a leftover object is only storage until
        its item is deleted.
        """
        keys = list(written)
        if not keys:
            return
        try:
            if not succeeded:
                self.blobs.delete(keys)
                return
            stale: list[str] = []
            for key in keys:
                version = item_content_version(key)
                if version is None:  # a run event's: never replaced
                    continue
                folder = key.rsplit("/", 1)[0] + "/"
                stale += [k for k in self.blobs.list_keys(folder) if (item_content_version(k) or version) < version]
            if stale:
                self.blobs.delete(stale)
        except Exception:  # noqa: BLE001 - cleanup must not turn a done write into an error
            logger.exception("could not clean up item content", extra={"keys": keys[:5]})

    def delete_item(self, pk: str, sk: str | None = None) -> None:
        """Delete every object of an item (or, without ``sk``, of a whole partition)."""
        place = split_pk(pk)
        if place is None:
            return
        keys = self.blobs.list_keys(item_content_prefix(place[0], place[1], sk))
        if keys:
            self.blobs.delete(keys)

    # ------------------------------------------------------------ reads

    def resolve(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items with every pointer replaced by its value, fetched in parallel."""
        wanted = [
            (index, name, pointer)
            for index, item in enumerate(items)
            for name, pointer in item.items()
            if name.endswith(POINTER_SUFFIX) and isinstance(pointer, dict)
        ]
        if not wanted:
            return items
        values = self.fetch([pointer for _, _, pointer in wanted])
        resolved = [dict(item) for item in items]
        for (index, name, _), value in zip(wanted, values, strict=True):
            item = resolved[index]
            del item[name]
            item[name[: -len(POINTER_SUFFIX)]] = value
        return resolved

    def fetch(self, pointers: list[dict[str, Any]]) -> list[str]:
        """The values behind pointers, in order; StaleContent if one is gone."""
        if len(pointers) == 1:
            return [self._fetch(pointers[0])]
        with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(pointers))) as pool:
            return list(pool.map(self._fetch, pointers))

    def _fetch(self, pointer: dict[str, Any]) -> str:
        key = str(pointer["key"])
        try:
            data = self.blobs.get(key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise StaleContent(key) from error
            raise
        if len(data) != int(pointer["bytes"]) or hashlib.sha256(data).hexdigest() != pointer["sha256"]:
            raise StaleContent(f"{key}: size or hash differs from the item's pointer")
        return data.decode()


def _pointer(key: str, data: bytes) -> dict[str, Any]:
    return {"key": key, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
