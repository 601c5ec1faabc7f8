"""moto's item size check, corrected for updates: replacing an attribute frees its old value.

moto 5 adds a new value's size to the item's current size, old value included, so updating a
250 KB attribute with another 250 KB fails as if the item held 500 KB. DynamoDB (and DynamoDB
Local) measure the item as it would be after the update; a run with long instructions changes
status by rewriting its document, so without this the local stack refuses runs AWS accepts.
"""

from __future__ import annotations

from typing import Any

# moto's own limit: DynamoDB's 400 KB, measured by hand to lie between 409 and 410 KB.
_LIMIT = 405_000


def install() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict, bytesize

    def size(key: str, value: Any) -> int:
        return bytesize(key) + (value.size() if type(value) is DynamoType else bytesize(str(value)))

    def set_item(self: LimitedSizeDict, key: str, value: Any) -> None:
        others = sum(size(k, v) for k, v in self.items() if k != key)
        if others + size(key, value) > _LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    LimitedSizeDict.__setitem__ = set_item  # type: ignore[method-assign,assignment]
