"""Shapes shared by several API objects: metadata, lists, deletions, the request base."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata may hold at most {MAX_METADATA_PAIRS} pairs, got {len(value)}")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(
                f"metadata keys may be at most {MAX_METADATA_KEY} characters, '{key[:20]}...' is {len(key)}"
            )
        if len(item) > MAX_METADATA_VALUE:
            raise ValueError(
                f"metadata values may be at most {MAX_METADATA_VALUE} characters, the value of '{key}' is {len(item)}"
            )
    return value


Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are an error, as on OpenAI."""

    model_config = ConfigDict(extra="forbid")

    def changes(self) -> dict[str, Any]:
        """What an update request sets, as JSON: only the fields it sent (OpenAI leaves the others
        alone), with ``metadata: null`` meaning no metadata."""
        changes = self.model_dump(mode="json", exclude_unset=True, by_alias=True)
        if "metadata" in changes and changes["metadata"] is None:
            changes["metadata"] = {}
        return changes


class ObjectModel(BaseModel):
    """Base of every API object: a plain data model that round-trips through JSON."""

    model_config = ConfigDict(extra="ignore")


class ListPage[T](BaseModel):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedObject(BaseModel):
    id: str
    object: str
    deleted: bool = True
