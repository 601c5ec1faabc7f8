"""The rate limit items of an API key: its request bucket and its runs in progress.

Both live under the key's partition ``T#<tenant>#KEY#<key id>`` (see ``docs/data-model.md``).

* ``RATE#REQUESTS`` is a token bucket kept as one number, ``tat`` (the generic cell rate
  algorithm's "theoretical arrival time", in microseconds): the bucket is full when ``tat`` is
  in the past, and each request moves it ``interval`` later, from now if it was in the past. A
  request is allowed while ``tat`` is at most ``tolerance`` ahead of now (tolerance = (burst - 1)
  intervals). One conditional ``UpdateItem`` takes a token; DynamoDB cannot compute
  ``max(tat, now)``, so there are two expressions (a full bucket restarts at now, a busy one
  moves on) and a failed condition returns the item as it was
  (``ReturnValuesOnConditionCheckFailure``), which picks the other one or refuses: one write
  when the caller guesses the bucket's state right, two when not, one for a refusal.
* ``RATE#RUNS`` holds ``runs``, a string set of ``<thread id>/<run id>``: the key's runs that have
  not ended. A run's slot is added in the transaction that creates it (conditional on the set's
  size), and deleted when it ends.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from .documents import TTL_ATTRIBUTE, DocumentStore
from .errors import is_conditional_failure
from .keys import RATE_REQUESTS_SK, RATE_RUNS_SK, rate_limit_pk

_deserialize = TypeDeserializer().deserialize


@dataclass(frozen=True)
class TokenTaken:
    """What the bucket said: ``allowed``, and its ``tat`` after the request (or as it was, when
    refused), in microseconds."""

    allowed: bool
    tat: int


class RateLimitStore:
    """The rate limit items, on a repository's table."""

    def __init__(self, store: DocumentStore) -> None:
        self.table = store.table
        self.client = store.client

    # ------------------------------------------------------------ requests per second

    def take_token(
        self,
        tenant: str,
        key_id: str,
        *,
        now: int,
        interval: int,
        tolerance: int,
        ttl: int,
        guess_full: bool = True,
    ) -> TokenTaken:
        """Take one token from the key's bucket if it has one (times in microseconds).

        ``guess_full`` says which expression to try first (a full bucket is the common case of a
        key that is not busy); a wrong guess costs one more write.
        """
        key = {"PK": rate_limit_pk(tenant, key_id), "SK": RATE_REQUESTS_SK}
        full = guess_full
        for _ in range(5):
            if full:
                expression = "SET tat = :next, #ttl = :ttl"
                condition = "attribute_not_exists(tat) OR tat <= :now"
                values: dict[str, Any] = {":next": now + interval, ":now": now, ":ttl": ttl}
            else:
                expression = "SET tat = tat + :interval, #ttl = :ttl"
                condition = "tat > :now AND tat <= :edge"
                values = {":interval": interval, ":now": now, ":edge": now + tolerance, ":ttl": ttl}
            try:
                response = self.table.update_item(
                    Key=key,
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if not is_conditional_failure(error):
                    raise
                old = _old_tat(error)
                if old is None or old <= now:
                    full = True
                elif old <= now + tolerance:
                    full = False
                else:
                    return TokenTaken(allowed=False, tat=old)
                continue
            return TokenTaken(allowed=True, tat=int(response["Attributes"]["tat"]))
        # Five lost races in a row: the key is that busy, so it is at its limit.
        return TokenTaken(allowed=False, tat=now + tolerance + interval)

    # ------------------------------------------------------------ runs in progress

    def op_take_run_slot(self, tenant: str, key_id: str, slot: str, *, limit: int, ttl: int) -> dict[str, Any]:
        """The transaction operation that adds ``slot`` to the key's runs if it has fewer than
        ``limit`` (the set is created with its first slot)."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": {"PK": rate_limit_pk(tenant, key_id), "SK": RATE_RUNS_SK},
                "UpdateExpression": "ADD runs :slot SET #ttl = :ttl",
                "ConditionExpression": "attribute_not_exists(runs) OR size(runs) < :limit",
                "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
                "ExpressionAttributeValues": {":slot": {slot}, ":limit": limit, ":ttl": ttl},
            }
        }

    def run_slots(self, tenant: str, key_id: str) -> builtins.set[str]:
        item = self.table.get_item(
            Key={"PK": rate_limit_pk(tenant, key_id), "SK": RATE_RUNS_SK}, ConsistentRead=True
        ).get("Item")
        return {str(slot) for slot in (item or {}).get("runs", set())}

    def free_run_slots(self, tenant: str, key_id: str, slots: builtins.set[str]) -> None:
        """Delete slots from the key's runs (idempotent; DynamoDB drops the attribute once empty)."""
        if not slots:
            return
        try:
            self.table.update_item(
                Key={"PK": rate_limit_pk(tenant, key_id), "SK": RATE_RUNS_SK},
                UpdateExpression="DELETE runs :slots",
                ConditionExpression="attribute_exists(PK)",  # never create the item to delete from it
                ExpressionAttributeValues={":slots": set(slots)},
            )
        except ClientError as error:
            if not is_conditional_failure(error):
                raise


def _old_tat(error: ClientError) -> int | None:
    """The ``tat`` of the item a failed condition returned (None: no item, or no ``tat``)."""
    item = error.response.get("Item") or {}
    value = item.get("tat")
    if value is None:
        return None
    if isinstance(value, dict):  # the low-level client's typed form
        value = _deserialize(value)
    return int(value)
