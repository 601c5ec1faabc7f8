"""S3 Vectors metadata filters, checked and compiled once per query into a predicate.

The operators are the ones the S3 User Guide documents (s3-vectors-metadata-filtering):
``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or``, plus ``$startsWith`` on ENHANCED
indexes. A bare ``{"k": v}`` means ``$eq``; several keys or operators in one object are ANDed.
Comparing with a list-valued metadata key matches if any element matches (the guide's example
for ``$eq``; applied alike to the other comparisons, as MongoDB-style filters do). ``$ne`` and
``$nin`` are the negations of ``$eq`` and ``$in``, so they also match vectors without the key
(the guide does not say; this is the MongoDB reading its syntax follows). Filtering on a
non-filterable key, an unknown operator or an operand of the wrong type is a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from moto.s3vectors.exceptions import ValidationError

Predicate = Callable[[Mapping[str, Any]], bool]
MAX_ENHANCED_CONSTRAINTS = 100  # the index-mode guide asks for 100 or fewer on ENHANCED indexes
_MISSING = object()


def compile_filter(document: Any, *, filterable: Callable[[str], bool], enhanced: bool) -> Predicate:
    """The predicate a filter document stands for; raises ValidationError (AWS's
    ValidationException) if AWS would refuse it."""
    compiler = _Compiler(filterable, enhanced)
    predicate = compiler.node(document, "filter")
    if enhanced and compiler.constraints > MAX_ENHANCED_CONSTRAINTS:
        raise ValidationError(
            f"Invalid filter: {compiler.constraints} constraints, more than the {MAX_ENHANCED_CONSTRAINTS} "
            "an ENHANCED index accepts"
        )
    return predicate


def _norm(value: Any) -> tuple[str, Any]:
    """A hashable form in which 1 == 1.0 but True != 1, as JSON values compare."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return ("s", value)


def _is_primitive(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _elements(metadata: Mapping[str, Any], key: str) -> list[Any] | None:
    value = metadata.get(key, _MISSING)
    if value is _MISSING:
        return None
    return value if isinstance(value, list) else [value]


class _Compiler:
    def __init__(self, filterable: Callable[[str], bool], enhanced: bool) -> None:
        self.filterable = filterable
        self.enhanced = enhanced
        self.constraints = 0

    def node(self, document: Any, path: str) -> Predicate:
        if not isinstance(document, dict):
            raise ValidationError(f"Invalid filter at {path}: expected an object")
        parts: list[Predicate] = []
        for name, value in document.items():
            if name in ("$and", "$or"):
                parts.append(self.logical(name, value, f"{path}.{name}"))
            elif name.startswith("$"):
                raise ValidationError(f"Invalid filter at {path}: unsupported operator {name}")
            else:
                parts.append(self.field(name, value, f"{path}.{name}"))
        return _all(parts)

    def logical(self, operator: str, value: Any, path: str) -> Predicate:
        if not isinstance(value, list) or not value:
            raise ValidationError(f"Invalid filter at {path}: {operator} takes a non-empty array of filters")
        parts = [self.node(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if operator == "$and":
            return _all(parts)
        return lambda metadata: any(part(metadata) for part in parts)

    def field(self, key: str, condition: Any, path: str) -> Predicate:
        if not self.filterable(key):
            raise ValidationError(f"Invalid filter at {path}: metadata key '{key}' is non-filterable")
        if not isinstance(condition, dict):
            return self.comparison(key, "$eq", condition, path)
        if not condition:
            raise ValidationError(f"Invalid filter at {path}: expected at least one operator")
        return _all([self.comparison(key, op, operand, f"{path}.{op}") for op, operand in condition.items()])

    def comparison(self, key: str, op: str, operand: Any, path: str) -> Predicate:
        self.constraints += 1
        if op in ("$eq", "$ne"):
            if not _is_primitive(operand):
                raise ValidationError(f"Invalid filter at {path}: {op} takes a string, number or boolean")
            target = _norm(operand)

            def eq(metadata: Mapping[str, Any]) -> bool:
                values = _elements(metadata, key)
                return values is not None and any(_norm(v) == target for v in values)

            return eq if op == "$eq" else _negate(eq)
        if op in ("$gt", "$gte", "$lt", "$lte"):
            if not _is_number(operand):
                raise ValidationError(f"Invalid filter at {path}: {op} takes a number")
            compare = _ORDERINGS[op]
            return lambda metadata: any(_is_number(v) and compare(v, operand) for v in _elements(metadata, key) or ())
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand or not all(_is_primitive(v) for v in operand):
                raise ValidationError(f"Invalid filter at {path}: {op} takes a non-empty array of primitives")
            members = {_norm(v) for v in operand}

            def within(metadata: Mapping[str, Any]) -> bool:
                return any(_norm(v) in members for v in _elements(metadata, key) or ())

            return within if op == "$in" else _negate(within)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise ValidationError(f"Invalid filter at {path}: $exists takes a boolean")
            return lambda metadata: (key in metadata) == operand
        if op == "$startsWith":
            if not self.enhanced:
                raise ValidationError(f"Invalid filter at {path}: $startsWith needs an index in ENHANCED mode")
            if not isinstance(operand, str):
                raise ValidationError(f"Invalid filter at {path}: $startsWith takes a string")
            return lambda metadata: any(
                isinstance(v, str) and v.startswith(operand) for v in _elements(metadata, key) or ()
            )
        raise ValidationError(f"Invalid filter at {path}: unsupported operator {op}")


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _negate(predicate: Predicate) -> Predicate:
    return lambda metadata: not predicate(metadata)


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda metadata: all(part(metadata) for part in parts)
