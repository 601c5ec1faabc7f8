"""Why a DynamoDB write did not happen, as exceptions the services can act on."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


class ConcurrentModification(Exception):
    """A conditional write lost a race; the caller re-reads and retries or reports a conflict."""


class EventSequenceTaken(ConcurrentModification):
    """Another writer appended a run event at the same sequence number first."""


class ItemTooLarge(Exception):
    """A write would take an item past DynamoDB's 400 KB item limit: deterministic, so callers
    report it as bad input instead of letting DynamoDB's ValidationException become a 500.

    ``key`` is the (PK, SK) of the offending item when known (the largest one of a transaction).
    """

    def __init__(self, key: tuple[str, str] | None) -> None:
        super().__init__(f"item {key[0]}/{key[1]} exceeds DynamoDB's 400 KB limit" if key else "item too large")
        self.key = key


class TransactionConflict(Exception):
    """A transaction's condition failed; ``reasons`` lists each item's cancellation code."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def is_item_too_large(error: ClientError) -> bool:
    """DynamoDB's answer to an item over 400 KB: a ValidationException about the item size."""
    detail = error.response.get("Error", {})
    return detail.get("Code") == "ValidationException" and "item size" in str(detail.get("Message", "")).lower()


def too_large_reason(error: ClientError) -> int | None:
    """Index of the operation a cancelled transaction names as too large (DynamoDB reports an
    update that grows an item past the limit as a ValidationError cancellation reason)."""
    for index, reason in enumerate(error.response.get("CancellationReasons") or []):
        if reason.get("Code") == "ValidationError" and "size" in str(reason.get("Message", "")).lower():
            return index
    return None


def operation_key(operation: dict[str, Any]) -> tuple[str, str] | None:
    body = next(iter(operation.values()))
    key = body.get("Key") or body.get("Item") or {}
    return (str(key["PK"]), str(key["SK"])) if "PK" in key and "SK" in key else None


def largest_key(operations: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The key of the operation writing the most data: the likely culprit of an oversized write."""
    writes = [op for op in operations if "Put" in op or "Update" in op]
    if not writes:
        return None

    def size(operation: dict[str, Any]) -> int:
        body = next(iter(operation.values()))
        return len(json.dumps(body.get("Item") or body.get("ExpressionAttributeValues") or {}, default=str))

    return operation_key(max(writes, key=size))


def transaction_reasons(error: ClientError) -> list[str] | None:
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons") or []
    return [r.get("Code", "None") for r in reasons]
