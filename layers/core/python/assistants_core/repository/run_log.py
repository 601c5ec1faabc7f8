"""The run event log: numbered items a run's writers append and its streams tail."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

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


class RunLog(DocumentStore):
    """Append and read a run's event log (``T#<t>#RUN#<run_id>`` / ``EVT#<seq>``)."""

    def op_put_events(self, pk: str, seq: int, events: builtins.list[tuple[str, str]], *, ttl: int) -> dict[str, Any]:
        """The Put of one log item at number ``seq`` holding events as (name, JSON data); fails
        if the number is taken."""
        item = {
            "PK": pk,
            "SK": event_sk(seq),
            "names": [name for name, _ in events],
            "data": [data for _, data in events],
            TTL_ATTRIBUTE: ttl,
        }
        return {"Put": {"TableName": self.table.name, "Item": item, "ConditionExpression": "attribute_not_exists(SK)"}}

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
        groups = _pack([(name, json.dumps(data, separators=(",", ":"))) for name, data in events])
        operations = own + [self.op_put_events(pk, first_seq + i, group, ttl=ttl) for i, group in enumerate(groups)]
        if len(operations) > 100:  # one transaction at most: all or nothing
            raise ValueError(f"write at most 100 items at once, not {len(operations)}")
        if len(operations) == 1 and not own:
            try:
                self.table.put_item(**{k: v for k, v in operations[0]["Put"].items() if k != "TableName"})
            except ClientError as error:
                if is_conditional_failure(error):
                    raise EventSequenceTaken(pk) from error
                if is_item_too_large(error):
                    raise ItemTooLarge(operation_key(operations[0])) from error
                raise
            return len(groups)
        try:
            self.transact(operations)
        except TransactionConflict as conflict:
            if any(reason not in ("None", "") for reason in conflict.reasons[: len(own)]):
                raise ConcurrentModification(f"{pk}: {conflict.reasons}") from conflict
            raise EventSequenceTaken(pk) from conflict
        return len(groups)

    def read_events(self, pk: str, after_seq: int, limit: int = 100) -> EventPage:
        """Events in log items after ``after_seq`` (at most ``limit`` items), oldest first;
        strongly consistent."""
        response = self.table.query(
            KeyConditionExpression=Key("PK").eq(pk) & Key("SK").between(event_sk(after_seq + 1), event_sk(10**10 - 1)),
            ConsistentRead=True,
            Limit=limit,
        )
        events = [
            (int(item["SK"][len(EVENT_PREFIX) :]), str(name), str(data))
            for item in response["Items"]
            for name, data in zip(item["names"], item["data"], strict=True)
        ]
        return EventPage(events, has_more="LastEvaluatedKey" in response)

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


def _pack(events: builtins.list[tuple[str, str]]) -> builtins.list[builtins.list[tuple[str, str]]]:
    """Group serialized events into log items under EVENT_ITEM_BYTES each, keeping their order."""
    groups: builtins.list[builtins.list[tuple[str, str]]] = [[]]
    size = 0
    for name, data in events:
        cost = len(name) + len(data.encode())
        if groups[-1] and size + cost > EVENT_ITEM_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, data))
        size += cost
    return groups
