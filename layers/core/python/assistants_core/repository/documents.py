"""The document store: API objects as JSON documents with optimistic concurrency, and the
transactions and attribute updates the services compose."""

from __future__ import annotations

import builtins
import copy
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from ..blobs import BlobStore
from ..config import boto_config, settings
from .conditions import ThreadSafeTable, build_conditions
from .content import CONTENT_KEYS, OFFLOADED, ContentStore, StaleContent, pointer_of
from .errors import (
    ConcurrentModification,
    ItemTooLarge,
    TransactionConflict,
    is_conditional_failure,
    is_item_too_large,
    largest_key,
    operation_key,
    too_large_reason,
    transaction_reasons,
)

Order = Literal["asc", "desc"]
Doc = dict[str, Any]
MIRRORED_ATTRIBUTES = ("status", "run_id")
TTL_ATTRIBUTE = "ttl"
EXPIRY_INDEX = "ExpiryIndex"  # sparse GSI: expiry_kind (hash), expires_at (range)
_READ_ATTEMPTS = 3  # reads of an item whose S3 content a newer write replaced meanwhile


@dataclass(frozen=True)
class Page:
    items: list[Doc]
    has_more: bool


@dataclass(frozen=True)
class StoredDoc:
    doc: Doc
    version: int
    attributes: dict[str, Any]

    def saved_as(self, doc: Doc, remove: Iterable[str] = ()) -> StoredDoc:
        """This item once :meth:`DocumentStore.op_save` wrote ``doc`` over it (``expected_version``
        this version): what a writer holds for its next conditional write, without a read."""
        removed = set(remove)
        attributes = {k: v for k, v in self.attributes.items() if k not in removed}
        for name in MIRRORED_ATTRIBUTES:
            if name in doc:
                if doc[name] is None:
                    attributes.pop(name, None)
                else:
                    attributes[name] = doc[name]
        return StoredDoc(doc=doc, version=self.version + 1, attributes=attributes)


@dataclass(frozen=True)
class StoredPage:
    items: builtins.list[StoredDoc]
    has_more: bool


class DocumentStore:
    def __init__(self, table_name: str | None = None, dynamodb: Any = None, blobs: BlobStore | None = None) -> None:
        resource = dynamodb or boto3.resource("dynamodb", config=boto_config())
        self.table = ThreadSafeTable(resource.Table(table_name or settings().table_name))
        self.client = self.table.meta.client
        self.content = ContentStore(blobs)  # values too large for an item (.content)

    # ------------------------------------------------------------ documents

    def create(self, pk: str, sk: str, doc: Doc, *, ttl: int | None = None, **attributes: Any) -> None:
        """Store a new object; fails with ConcurrentModification if the key exists."""
        item, written = self._item(pk, sk, doc, version=1, ttl=ttl, **attributes)
        succeeded = False
        try:
            self.table.put_item(Item=item, ConditionExpression=Attr("PK").not_exists())
            succeeded = True
        except ClientError as error:
            if is_conditional_failure(error):
                raise ConcurrentModification(f"{pk}/{sk}") from error
            if is_item_too_large(error):
                raise ItemTooLarge((pk, sk)) from error
            raise
        finally:
            self.content.settled(written, succeeded=succeeded)

    def get(self, pk: str, sk: str) -> StoredDoc | None:
        def read() -> StoredDoc | None:
            item = self.table.get_item(Key={"PK": pk, "SK": sk}, ConsistentRead=True).get("Item")
            return None if item is None else _stored(self.content.resolve([item])[0])

        return _fresh(read)

    def get_doc(self, pk: str, sk: str) -> Doc | None:
        stored = self.get(pk, sk)
        return stored.doc if stored else None

    def get_attribute(self, pk: str, sk: str, name: str) -> Any | None:
        """One mirrored attribute of an item (None if the item is missing), eventually consistent:
        a cheap check that may lag a write by a moment."""
        item = self.table.get_item(
            Key={"PK": pk, "SK": sk}, ProjectionExpression="#a", ExpressionAttributeNames={"#a": name}
        ).get("Item")
        return None if item is None else item.get(name)

    def save(
        self,
        pk: str,
        sk: str,
        doc: Doc,
        *,
        expected_version: int,
        remove: Iterable[str] = (),
        return_old: bool = False,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Replace an object's doc if nobody changed it since ``expected_version`` was read.

        Uses UpdateItem, not PutItem, so attributes that other writers own (the thread's run
        lock, a run's task token) survive. With ``return_old`` it returns the item as it was,
        read atomically with the write (how a caller learns a task token it just removed).
        """
        operation = self.op_save(pk, sk, doc, expected_version=expected_version, remove=remove, **attributes)
        written = operation.get(CONTENT_KEYS, [])
        succeeded = False
        try:
            response = self.client.update_item(**operation["Update"], ReturnValues="ALL_OLD" if return_old else "NONE")
            succeeded = True
        except ClientError as error:
            if is_conditional_failure(error):
                raise ConcurrentModification(f"{pk}/{sk}") from error
            if is_item_too_large(error):
                raise ItemTooLarge((pk, sk)) from error
            raise
        finally:
            self.content.settled(written, succeeded=succeeded)
        return dict(response.get("Attributes") or {})

    def op_save(
        self, pk: str, sk: str, doc: Doc, *, expected_version: int, remove: Iterable[str] = (), **attributes: Any
    ) -> dict[str, Any]:
        """The UpdateItem of :meth:`save`, usable inside :meth:`transact`.

        A large value goes to S3 now (:mod:`.content`); the operation carries the keys written
        under CONTENT_KEYS, which :meth:`transact` and :meth:`save` settle after the write.
        """
        given: dict[str, Any] = {"doc": json.dumps(doc, separators=(",", ":")), "version": expected_version + 1}
        for name in MIRRORED_ATTRIBUTES:
            if doc.get(name) is not None:
                given[name] = doc[name]
        given.update(attributes)
        values, written = self.content.offload(pk, sk, expected_version + 1, given)
        names = {f"#a{i}": name for i, name in enumerate(values)}
        expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
        # A mirrored attribute whose doc value became None goes too, not left stale beside the doc;
        # a value written inline drops its old pointer, and an offloaded one its old inline value.
        cleared = [name for name in MIRRORED_ATTRIBUTES if name in doc and doc[name] is None]
        strings = [n for n, value in given.items() if isinstance(value, str) and n not in MIRRORED_ATTRIBUTES]
        swapped = [name if name not in values else pointer_of(name) for name in strings]
        dropped = [*remove, *(pointer_of(name) for name in remove)]
        removed = list(dict.fromkeys(name for name in (*dropped, *cleared, *swapped) if name not in values))
        if removed:
            names.update({f"#r{i}": name for i, name in enumerate(removed)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        expression_values = {f":a{i}": v for i, v in enumerate(values.values())}
        expression_values[":expected"] = expected_version
        names["#version"] = "version"
        operation: dict[str, Any] = {
            "Update": {
                "TableName": self.table.name,
                "Key": {"PK": pk, "SK": sk},
                "UpdateExpression": expression,
                "ConditionExpression": "#version = :expected",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": expression_values,
            }
        }
        if written:
            operation[CONTENT_KEYS] = written
        return operation

    def mutate(
        self,
        pk: str,
        sk: str,
        change: Callable[[Doc], Doc | None],
        *,
        attempts: int = 5,
        **attributes: Any,
    ) -> Doc | None:
        """Read, change and conditionally write back an object, retrying lost races.

        ``change`` gets a copy of the doc and returns the new doc (or None to leave it, or raises
        to abort); ``attributes`` are set beside the doc with it. Returns None when the object
        does not exist.
        """
        for _ in range(attempts):
            stored = self.get(pk, sk)
            if stored is None:
                return None
            new_doc = change(copy.deepcopy(stored.doc))
            if new_doc is None:
                return stored.doc
            try:
                self.save(pk, sk, new_doc, expected_version=stored.version, **attributes)
                return new_doc
            except ConcurrentModification:
                continue
        raise ConcurrentModification(f"{pk}/{sk}: gave up after {attempts} attempts")

    def delete(self, pk: str, sk: str) -> bool:
        """Delete an object (and its values in S3); False when it did not exist."""
        try:
            old = self.table.delete_item(
                Key={"PK": pk, "SK": sk}, ConditionExpression=Attr("PK").exists(), ReturnValues="ALL_OLD"
            ).get("Attributes", {})
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        if old.get(OFFLOADED):
            self.content.delete_item(pk, sk)
        return True

    def partition(self, pk: str) -> builtins.list[Doc]:
        """Every object under a partition key, in sort-key order (a thread and all it holds)."""
        return [stored.doc for stored in self.partition_stored(pk).values()]

    def partition_stored(self, pk: str) -> dict[str, StoredDoc]:
        """:meth:`partition` with versions and attributes, by sort key: one read where a turn
        needs both an object (the run) and everything beside it (the thread's messages)."""

        def read() -> dict[str, StoredDoc]:
            items = [item for item in self._query(KeyConditionExpression=Key("PK").eq(pk), ConsistentRead=True)]
            documents = self.content.resolve([item for item in items if _has_doc(item)])
            return {str(item["SK"]): _stored(item) for item in documents}

        return _fresh(read)

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query finds, page after page (boto3's paginator)."""
        paginator = self.client.get_paginator("query")  # its Key() conditions too: see .conditions
        for page in paginator.paginate(TableName=self.table.name, **build_conditions(kwargs)):
            yield from page["Items"]

    def delete_keys(self, keys: Iterable[tuple[str, str]]) -> None:
        """Delete items by key, 25 to a BatchWriteItem (unconditional; missing ones are no-ops).

        For small link items (a file's store memberships): their values never go to S3."""
        with self.table.batch_writer() as batch:
            for pk, sk in dict.fromkeys(keys):
                batch.delete_item(Key={"PK": pk, "SK": sk})

    def delete_partition(self, pk: str) -> None:
        """Delete every item under a partition key (a thread and all it holds), then their
        values in S3, with any a failed write left there (no reader can follow a pointer to them
        once the items are gone)."""
        with self.table.batch_writer() as batch:
            for item in self._query(KeyConditionExpression=Key("PK").eq(pk), ProjectionExpression="PK, SK"):
                batch.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
        self.content.delete_item(pk)

    def list(
        self,
        pk: str,
        prefix: str,
        *,
        limit: int,
        order: Order = "desc",
        after: str | None = None,
        before: str | None = None,
        where: dict[str, str] | None = None,
    ) -> Page:
        """One page of objects under ``pk`` whose sort key starts with ``prefix``.

        ``after``/``before`` are object ids: since ids sort by creation, ``prefix + id`` is an
        exclusive start key even for an id that no longer exists. ``before`` walks the other
        way and the page is turned back into list order.
        """
        page = self.list_stored(pk, prefix, limit=limit, order=order, after=after, before=before, where=where)
        return Page(items=[stored.doc for stored in page.items], has_more=page.has_more)

    def list_stored(
        self,
        pk: str,
        prefix: str,
        *,
        limit: int,
        order: Order = "desc",
        after: str | None = None,
        before: str | None = None,
        where: dict[str, str] | None = None,
    ) -> StoredPage:
        """:meth:`list` with each object's version and attributes (a store's file counts)."""
        return _fresh(lambda: self._list_stored(pk, prefix, limit, order, after, before, where))

    def _list_stored(
        self,
        pk: str,
        prefix: str,
        limit: int,
        order: Order,
        after: str | None,
        before: str | None,
        where: dict[str, str] | None,
    ) -> StoredPage:
        forward = order == "asc"
        cursor = after
        if before is not None:
            forward, cursor = not forward, before
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(pk) & Key("SK").begins_with(prefix),
            "ScanIndexForward": forward,
            "ConsistentRead": True,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = {"PK": pk, "SK": prefix + cursor}
        if where:
            condition: ConditionBase | None = None
            for name, value in where.items():
                clause = Attr(name).eq(value)
                condition = clause if condition is None else condition & clause
            kwargs["FilterExpression"] = condition
        wanted = limit + 1
        items: list[dict[str, Any]] = []
        while len(items) < wanted:
            # With a filter, Limit counts items read before filtering, so read generously.
            kwargs["Limit"] = max(wanted - len(items), 50) if where else wanted - len(items)
            response = self.table.query(**kwargs)
            items.extend(response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        page = [_stored(item) for item in self.content.resolve(items[:limit])]
        if before is not None:
            page.reverse()
        return StoredPage(items=page, has_more=len(items) > limit)

    # ------------------------------------------------------------ transactions

    def transact(self, operations: builtins.list[dict[str, Any]]) -> None:
        """TransactWriteItems over operations built by the ``op_*`` helpers.

        The table resource's client converts plain Python values to DynamoDB's typed form,
        so the operations carry plain values. Raises ItemTooLarge if an item would pass 400 KB.
        Once it succeeds, older versions of the values the operations put in S3 are deleted
        (:mod:`.content`). A failed transaction keeps its objects: its caller may retry the
        same operations (a writer that lost an event number does); those never retried are
        swept by the item's next writes, or go with its partition.
        """
        written = [key for operation in operations for key in operation.get(CONTENT_KEYS, [])]
        operations = [{k: v for k, v in operation.items() if k != CONTENT_KEYS} for operation in operations]
        try:
            self.client.transact_write_items(TransactItems=operations)
        except ClientError as error:
            if is_item_too_large(error):
                raise ItemTooLarge(largest_key(operations)) from error
            culprit = too_large_reason(error)
            if culprit is not None and culprit < len(operations):
                raise ItemTooLarge(operation_key(operations[culprit])) from error
            reasons = transaction_reasons(error)
            if reasons is not None:
                raise TransactionConflict(reasons) from error
            raise
        self.content.settled(written, succeeded=True)

    def op_put(self, pk: str, sk: str, doc: Doc, *, ttl: int | None = None, **attributes: Any) -> dict[str, Any]:
        item, written = self._item(pk, sk, doc, version=1, ttl=ttl, **attributes)
        operation: dict[str, Any] = {
            "Put": {"TableName": self.table.name, "Item": item, "ConditionExpression": "attribute_not_exists(PK)"}
        }
        if written:
            operation[CONTENT_KEYS] = written
        return operation

    def op_condition(
        self,
        pk: str,
        sk: str,
        expression: str,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        check = {"TableName": self.table.name, "Key": {"PK": pk, "SK": sk}, "ConditionExpression": expression}
        return {"ConditionCheck": _with_placeholders(check, values, names)}

    def op_update(
        self,
        pk: str,
        sk: str,
        expression: str,
        condition: str,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        update = {
            "TableName": self.table.name,
            "Key": {"PK": pk, "SK": sk},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
        }
        return {"Update": _with_placeholders(update, values, names)}

    def op_add(self, pk: str, sk: str, counters: dict[str, int]) -> dict[str, Any]:
        """Add to numeric attributes beside the doc (a store's file counts), atomically: DynamoDB's
        ``ADD`` never loses a concurrent increment, and it starts a missing counter at 0."""
        names = {f"#c{i}": name for i, name in enumerate(counters)}
        values = {f":c{i}": value for i, value in enumerate(counters.values())}
        expression = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
        return self.op_update(pk, sk, expression, "attribute_exists(PK)", values, names)

    def op_delete(self, pk: str, sk: str, *, expected_version: int | None = None) -> dict[str, Any]:
        """A Delete for a transaction: of the version read (if given), else unconditional."""
        delete: dict[str, Any] = {"TableName": self.table.name, "Key": {"PK": pk, "SK": sk}}
        if expected_version is not None:
            delete["ConditionExpression"] = "#version = :expected"
            delete["ExpressionAttributeNames"] = {"#version": "version"}
            delete["ExpressionAttributeValues"] = {":expected": expected_version}
        return {"Delete": delete}

    def get_many(self, keys: builtins.list[tuple[str, str]]) -> dict[tuple[str, str], StoredDoc]:
        """Several items by key (BatchGetItem, 100 a call, strongly consistent); missing ones are left out."""
        return _fresh(lambda: self._get_many(keys))

    def _get_many(self, keys: builtins.list[tuple[str, str]]) -> dict[tuple[str, str], StoredDoc]:
        items: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table.name: {
                    "Keys": [{"PK": pk, "SK": sk} for pk, sk in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                items += [item for item in response.get("Responses", {}).get(self.table.name, []) if _has_doc(item)]
                request = response.get("UnprocessedKeys") or {}
        return {(str(item["PK"]), str(item["SK"])): _stored(item) for item in self.content.resolve(items)}

    def due_to_expire(self, kind: str, until: int) -> Iterator[tuple[str, str]]:
        """Keys of the objects of ``kind`` whose ``expires_at`` is at or before ``until``, from the
        sparse ``ExpiryIndex`` (eventually consistent, as every GSI read)."""
        condition = Key("expiry_kind").eq(kind) & Key("expires_at").lte(until)
        for item in self._query(IndexName=EXPIRY_INDEX, KeyConditionExpression=condition):
            yield str(item["PK"]), str(item["SK"])

    # ------------------------------------------------------------ attributes outside the doc

    def update_attributes(
        self,
        pk: str,
        sk: str,
        *,
        set_values: dict[str, Any] | None = None,
        remove: Iterable[str] = (),
        condition: ConditionBase | None = None,
        return_old: bool = False,
    ) -> dict[str, Any] | None:
        """Change attributes beside the doc (locks, tokens); returns the old item if asked.

        Raises ConcurrentModification when ``condition`` does not hold.
        """
        names: dict[str, str] = {}
        parts: list[str] = []
        values: dict[str, Any] = {}
        if set_values:
            assignments = []
            for i, (name, value) in enumerate(set_values.items()):
                names[f"#s{i}"] = name
                values[f":s{i}"] = value
                assignments.append(f"#s{i} = :s{i}")
            parts.append("SET " + ", ".join(assignments))
        removed = list(remove)
        if removed:
            for i, name in enumerate(removed):
                names[f"#r{i}"] = name
            parts.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed))))
        kwargs: dict[str, Any] = {
            "Key": {"PK": pk, "SK": sk},
            "UpdateExpression": " ".join(parts),
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_OLD" if return_old else "NONE",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        # Never create a stub item: an update of attributes only applies to an existing object.
        exists = Attr("PK").exists()
        kwargs["ConditionExpression"] = exists if condition is None else exists & condition
        try:
            response = self.table.update_item(**kwargs)
        except ClientError as error:
            if is_conditional_failure(error):
                raise ConcurrentModification(f"{pk}/{sk}") from error
            raise
        return response.get("Attributes") if return_old else None

    # ------------------------------------------------------------ helpers

    def _item(
        self, pk: str, sk: str, doc: Doc, *, version: int, ttl: int | None = None, **attributes: Any
    ) -> tuple[dict[str, Any], builtins.list[str]]:
        """A new item, its large values already in S3, and the keys they were written at."""
        item: dict[str, Any] = {"doc": json.dumps(doc, separators=(",", ":")), "version": version}
        for name in MIRRORED_ATTRIBUTES:
            if doc.get(name) is not None:
                item[name] = doc[name]
        if ttl is not None:
            item[TTL_ATTRIBUTE] = ttl
        item.update(attributes)
        offloaded, written = self.content.offload(pk, sk, version, item)
        return {"PK": pk, "SK": sk, **offloaded}, written


def _fresh[T](read: Callable[[], T]) -> T:
    """``read`` again if it followed a pointer to content a newer write had replaced."""
    for _ in range(_READ_ATTEMPTS - 1):
        try:
            return read()
        except StaleContent:
            continue
    return read()


def _has_doc(item: dict[str, Any]) -> bool:
    return "doc" in item or pointer_of("doc") in item


def _stored(item: dict[str, Any]) -> StoredDoc:
    attributes = {k: v for k, v in item.items() if k not in ("PK", "SK", "doc", "version", OFFLOADED)}
    return StoredDoc(doc=json.loads(item["doc"]), version=int(item["version"]), attributes=attributes)


def _with_placeholders(
    operation: dict[str, Any], values: dict[str, Any] | None, names: dict[str, str] | None
) -> dict[str, Any]:
    """A transaction operation with its expression placeholders (DynamoDB refuses empty maps)."""
    if values:
        operation["ExpressionAttributeValues"] = values
    if names:
        operation["ExpressionAttributeNames"] = names
    return operation
