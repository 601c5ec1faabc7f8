"""Idempotency records in the table, kept by Powertools Idempotency (``DynamoDBPersistenceLayer``).

A record is ``T#<tenant>#IDEM#<sha256 of method, path and key>`` / ``IDEM`` (see
``docs/data-model.md``): each key has a partition of its own, so keyed requests spread over the
table, and, like every other item, it starts with its tenant. Powertools puts its static value
in ``key_attr`` and the hashed key in ``sort_key_attr``, so the two are named the other way
round here: the hashed key lands in ``PK``.

Powertools keeps the record's key prefix on the persistence layer itself, and a process serves
several tenants at once (uvicorn threads), so each request gets its own shallow copy of one
configured layer: the boto3 client and the compiled expressions are shared.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from ..config import boto_config, settings
from .documents import TTL_ATTRIBUTE
from .keys import IDEMPOTENCY_SK, idempotency_prefix

# What a record holds besides its key (Powertools' names for them are generic).
STATUS_ATTRIBUTE = "status"
RESPONSE_ATTRIBUTE = "response"
REQUEST_HASH_ATTRIBUTE = "request_hash"
IN_PROGRESS_EXPIRY_ATTRIBUTE = "in_progress_expiry"
# The data a record is keyed and checked by: {"key": "<method> <path> <key>", "request": <hash>}.
KEY_FIELD = "key"
REQUEST_FIELD = "request"


@lru_cache(maxsize=1)
def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath=KEY_FIELD,
        payload_validation_jmespath=REQUEST_FIELD,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings().idempotency_ttl_seconds,
        hash_function="sha256",
    )


@lru_cache(maxsize=1)
def _base_layer() -> DynamoDBPersistenceLayer:
    # A plain client: the documents' client (the Table resource's) converts Python values
    # itself, and Powertools sends typed attribute values.
    client = boto3.client("dynamodb", config=boto_config())
    layer = DynamoDBPersistenceLayer(
        table_name=settings().table_name,
        key_attr="SK",
        sort_key_attr="PK",
        static_pk_value=IDEMPOTENCY_SK,
        expiry_attr=TTL_ATTRIBUTE,
        in_progress_expiry_attr=IN_PROGRESS_EXPIRY_ATTRIBUTE,
        status_attr=STATUS_ATTRIBUTE,
        data_attr=RESPONSE_ATTRIBUTE,
        validation_key_attr=REQUEST_HASH_ATTRIBUTE,
        boto3_client=client,
    )
    layer.configure(idempotency_config())
    return layer


def idempotency_store(tenant: str) -> DynamoDBPersistenceLayer:
    """The persistence layer for one request of ``tenant`` (records under its prefix)."""
    layer = copy.copy(_base_layer())
    layer.configure(idempotency_config(), key_prefix=idempotency_prefix(tenant))
    return layer
