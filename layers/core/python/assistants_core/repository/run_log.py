"""The run event log: numbered items a run's writers append and its streams tail."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from .content import CONTENT_KEYS, pointer_of
from .documents import TTL_ATTRIBUTE, Doc, DocumentStore
from .errors import (
    ConcurrentModification,
    EventSequenceTaken,
    ItemTooLarge,
    TransactionConflict,
    is_conditional_failure,
    is_item_too_large,
    operation_key,
)
from .keys import EVENT_ITEM_BYTES, EVENT_PREFIX, event_sk


@dataclass(frozen=True)
class EventPage:
    """Events read from a run's log as (item number, name, JSON data); ``has_more`` when the
    read stopped at its item limit."""

    events: list[tuple[int, str, str]]
    has_more: bool


# An event whose JSON went to S3 keeps "" in ``data`` and its pointer in ``data_s3`` by position.
DATA_POINTERS = pointer_of("data")
# (name, JSON data, pointer to the data in S3 or None)
Event = tuple[str, str, dict[str, Any] | None]


_LAST_EVENT_SK = event_sk(10**10 - 1)


class RunLog(DocumentStore):
    """Append and read a run's event log (``T#<t>#RUN#<run_id>`` / ``EVT#<seq>``)."""

    def op_put_events(self, pk: str, seq: int, events: builtins.list[Event], *, ttl: int) -> dict[str, Any]:
        """The Put of one log item at number ``seq`` holding events as (name, JSON data, pointer);
        fails if the number is taken."""
        item: dict[str, Any] = {
            "PK": pk,
            "SK": event_sk(seq),
            "names": [name for name, _, _ in events],
            "data": ["" if pointer else data for _, data, pointer in events],
            TTL_ATTRIBUTE: ttl,
        }
        pointers = {str(i): pointer for i, (_, _, pointer) in enumerate(events) if pointer}
        if pointers:
            item[DATA_POINTERS] = pointers
        operation: dict[str, Any] = {
            "Put": {"TableName": self.table.name, "Item": item, "ConditionExpression": "attribute_not_exists(SK)"}
        }
        if pointers:
            operation[CONTENT_KEYS] = [str(pointer["key"]) for pointer in pointers.values()]
        return operation

    def append_events(
        self,
        pk: str,
        first_seq: int,
        events: builtins.list[tuple[str, Doc]],
        *,
        ttl: int,
        with_ops: builtins.list[dict[str, Any]] | None = None,
    ) -> int:
        """Append events to a run's log as items ``first_seq``, ``first_seq + 1``...; all or
        nothing. Returns how many items that took.

        One item holds a whole append (several items only past EVENT_ITEM_BYTES), so the first
        token's write, with its message and step, is a three-item transaction, not seven.
        ``with_ops`` (from the ``op_*`` builders) are written in the same transaction, so a
        change and the event that announces it happen together or not at all.
        Raises EventSequenceTaken if another writer already took one of the numbers, and
        ConcurrentModification if one of ``with_ops``' own conditions failed.
        """
        own = list(with_ops or [])
        serialized = [(name, json.dumps(data, separators=(",", ":"))) for name, data in events]
        # An event too large for an item (a 500 KB answer, long instructions) goes to S3 first.
        groups = _pack([(name, data, self.content.offload_event(pk, data)) for name, data in serialized])
        operations = own + [self.op_put_events(pk, first_seq + i, group, ttl=ttl) for i, group in enumerate(groups)]
        if len(operations) > 100:  # one transaction at most: all or nothing
            raise ValueError(f"write at most 100 items at once, not {len(operations)}")
        # This append's own event objects go if it fails (the next attempt writes new ones);
        # with_ops' stay, since the caller may retry them as they are.
        written = [key for operation in operations[len(own) :] for key in operation.get(CONTENT_KEYS, [])]
        succeeded = False
        try:
            if len(operations) == 1 and not own:
                try:
                    self.table.put_item(**{k: v for k, v in operations[0]["Put"].items() if k != "TableName"})
                except ClientError as error:
                    if is_conditional_failure(error):
                        raise EventSequenceTaken(pk) from error
                    if is_item_too_large(error):
                        raise ItemTooLarge(operation_key(operations[0])) from error
                    raise
            else:
                try:
                    self.transact(operations)
                except TransactionConflict as conflict:
                    if any(reason not in ("None", "") for reason in conflict.reasons[: len(own)]):
                        raise ConcurrentModification(f"{pk}: {conflict.reasons}") from conflict
                    raise EventSequenceTaken(pk) from conflict
            succeeded = True
        finally:
            if not succeeded:
                self.content.settled(written, succeeded=False)
        return len(groups)

    def read_events(self, pk: str, after_seq: int, limit: int = 100) -> EventPage:
        """Events in log items after ``after_seq`` (at most ``limit`` items), oldest first;
        strongly consistent. Events kept in S3 are fetched (in parallel)."""
        # A stream calls this every few tens of ms: the expression is written out, not built
        # from Key() conditions on every call.
        response = self.table.query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
            ExpressionAttributeValues={":pk": pk, ":first": event_sk(after_seq + 1), ":last": _LAST_EVENT_SK},
            ConsistentRead=True,
            Limit=limit,
        )
        events = [
            (int(item["SK"][len(EVENT_PREFIX) :]), str(name), str(data), (item.get(DATA_POINTERS) or {}).get(str(i)))
            for item in response["Items"]
            for i, (name, data) in enumerate(zip(item["names"], item["data"], strict=True))
        ]
        pointers = [pointer for *_, pointer in events if pointer]
        if pointers:  # never replaced, so never stale: only the lifecycle rule deletes them, after the TTL
            fetched = iter(self.content.fetch(pointers))
            events = [(seq, name, next(fetched) if pointer else data, pointer) for seq, name, data, pointer in events]
        return EventPage([(seq, name, data) for seq, name, data, _ in events], has_more="LastEvaluatedKey" in response)

    def last_event_seq(self, pk: str) -> int:
        response = self.table.query(
            KeyConditionExpression=Key("PK").eq(pk) & Key("SK").begins_with(EVENT_PREFIX),
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=1,
            ProjectionExpression="SK",
        )
        items = response["Items"]
        return int(items[0]["SK"][len(EVENT_PREFIX) :]) if items else 0


def _pack(events: builtins.list[Event]) -> builtins.list[builtins.list[Event]]:
    """Group serialized events into log items under EVENT_ITEM_BYTES each, keeping their order."""
    groups: builtins.list[builtins.list[Event]] = [[]]
    size = 0
    for name, data, pointer in events:
        cost = len(name) + (len(json.dumps(pointer)) if pointer else len(data.encode()))
        if groups[-1] and size + cost > EVENT_ITEM_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, data, pointer))
        size += cost
    return groups
