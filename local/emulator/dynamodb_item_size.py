"""moto's item size check, corrected for updates: replacing an attribute frees its old value;
and, for tests, an emulated oversize: a write of a string holding a chosen marker fails as an
item over 400 KB would (``POST /_local/faults`` ``{"dynamodb_oversize": marker, "times": n}``),
so a test can make any save fail the way DynamoDB's limit does.

moto 5 adds a new value's size to the item's current size, old value included, so updating a
250 KB attribute with another 250 KB fails as if the item held 500 KB. DynamoDB (and DynamoDB
Local) measure the item as it would be after the update; a run with long instructions changes
status by rewriting its document, so without this the local stack refuses runs AWS accepts.
"""

from __future__ import annotations

from typing import Any

# moto's own limit: DynamoDB's 400 KB, measured by hand to lie between 409 and 410 KB.
_LIMIT = 405_000
# marker -> writes of an attribute holding it that still fail (the faults endpoint sets them)
_OVERSIZE_MARKERS: dict[str, int] = {}


def inject_oversize(marker: str, times: int) -> None:
    """Make the next ``times`` attribute writes whose string holds ``marker`` fail (0 clears)."""
    if times > 0:
        _OVERSIZE_MARKERS[marker] = times
    else:
        _OVERSIZE_MARKERS.pop(marker, None)


def _poisoned(value: Any) -> bool:
    text = str(getattr(value, "value", ""))
    for marker, left in list(_OVERSIZE_MARKERS.items()):
        if marker in text:
            if left <= 1:
                _OVERSIZE_MARKERS.pop(marker, None)
            else:
                _OVERSIZE_MARKERS[marker] = left - 1
            return True
    return False


def install() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict, bytesize

    def size(key: str, value: Any) -> int:
        return bytesize(key) + (value.size() if type(value) is DynamoType else bytesize(str(value)))

    def set_item(self: LimitedSizeDict, key: str, value: Any) -> None:
        others = sum(size(k, v) for k, v in self.items() if k != key)
        if others + size(key, value) > _LIMIT or (_OVERSIZE_MARKERS and _poisoned(value)):
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = set_item  # type: ignore[method-assign,assignment]
