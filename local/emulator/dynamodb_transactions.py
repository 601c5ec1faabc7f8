"""A cheaper TransactWriteItems for moto, so the local stack stays fast as its table grows.

moto 5 snapshots (deep-copies) every table a transaction touches, once per item, to roll back
on failure: each transaction costs time proportional to the table's size (about 0.25 s at
5,000 items), and every run status change here is a transaction. This version checks every
condition first and writes only if all hold, which is all-or-nothing because the local stack
answers one DynamoDB request at a time (:mod:`local.emulator.server`). It snapshots only
the items it writes, to undo them if a write itself fails (a malformed update expression).
"""

from __future__ import annotations

import copy
from typing import Any


def install() -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        seen: set[tuple[str, str]] = set()
        errors: list[tuple[str | None, str | None, Any]] = []
        plan: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            kind, op = next(iter(entry.items()))
            table = self.get_table(op["TableName"])
            if kind == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            marker = (op["TableName"], str(dict(sorted(key.items()))))
            if marker in seen:
                raise MultipleTransactionsException()
            seen.add(marker)
            current = self.get_item(op["TableName"], key)
            condition = op.get("ConditionExpression")
            holds = condition is None or get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            ).expr(current)
            if holds:
                errors.append((None, None, None))
            else:
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
            plan.append((kind, op, key))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        undo: list[tuple[str, dict[str, Any], Any]] = []
        try:
            for kind, op, key in plan:
                if kind == "ConditionCheck":
                    continue
                name = op["TableName"]
                undo.append((name, key, copy.deepcopy(self.get_item(name, key))))
                if kind == "Put":
                    self.put_item(name, op["Item"])
                elif kind == "Delete":
                    self.delete_item(name, key)
                elif kind == "Update":
                    self.update_item(
                        name,
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=op.get("ExpressionAttributeNames"),
                        expression_attribute_values=op.get("ExpressionAttributeValues"),
                    )
                else:
                    raise ValueError("Unsupported transaction operation")
        except Exception:
            for name, key, before in reversed(undo):
                if before is None:
                    self.delete_item(name, key)
                else:
                    self.put_item(name, before.to_json()["Attributes"])
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
