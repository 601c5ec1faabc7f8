"""Key and Attr conditions built per call, because boto3 builds them with one shared builder.

boto3's DynamoDB resource turns ``Key(...)``/``Attr(...)`` conditions into expression strings
with a single ``ConditionExpressionBuilder`` per client, whose placeholder counters every thread
shares and resets (boto/boto3#1332). Two threads building at once can swap placeholders: the
query fails ("KeyConditionExpressions must only contain one condition per key"), or worse, a
condition silently names another attribute. One process runs many calls at once (a stream's
polls in worker threads, the agent step's delta timer, the local stack's every function), so
:class:`ThreadSafeTable` builds the conditions of each call with a builder of its own and hands
boto3 plain strings, which it passes through untouched.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder

# Parameters that take a condition, and whether it is a key condition.
_CONDITION_PARAMETERS = {"KeyConditionExpression": True, "FilterExpression": False, "ConditionExpression": False}
_BUILT_METHODS = frozenset({"query", "scan", "put_item", "update_item", "delete_item"})


def build_conditions(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with every condition object replaced by its expression and placeholders."""
    if not any(isinstance(kwargs.get(name), ConditionBase) for name in _CONDITION_PARAMETERS):
        return kwargs
    builder = ConditionExpressionBuilder()  # one per call: placeholders unique within it
    built = dict(kwargs)
    names = dict(kwargs.get("ExpressionAttributeNames") or {})
    values = dict(kwargs.get("ExpressionAttributeValues") or {})
    for name, is_key in _CONDITION_PARAMETERS.items():
        condition = kwargs.get(name)
        if isinstance(condition, ConditionBase):
            expression = builder.build_expression(condition, is_key_condition=is_key)
            built[name] = expression.condition_expression
            names.update(expression.attribute_name_placeholders)
            values.update(expression.attribute_value_placeholders)
    if names:
        built["ExpressionAttributeNames"] = names
    if values:
        built["ExpressionAttributeValues"] = values
    return built


class ThreadSafeTable:
    """A boto3 ``Table`` whose calls build their conditions themselves (see the module)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        if name not in _BUILT_METHODS:
            return attribute

        def call(**kwargs: Any) -> Any:
            return attribute(**build_conditions(kwargs))

        return call
