"""API keys: stored as SHA-256 hashes, each mapping to one tenant.

The Lambda authorizer looks keys up here; ``python -m assistants_core.api_keys`` (``make key``)
creates, lists and revokes them, and ``list`` shows when each was last used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from .ids import now
from .repository import API_KEY_PREFIX, API_KEYS_PK, ConcurrentModification, Repository
from .repository.errors import is_conditional_failure

TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A key's last use is recorded at most this often: the authorizer (which API Gateway calls only
# when its cache misses) writes only when the stored time is older, so requests cost no writes.
LAST_USED_GRANULARITY_SECONDS = 3600

logger = Logger()


@dataclass(frozen=True)
class ApiKeyRecord:
    key_hash: str
    tenant_id: str
    name: str
    created_at: int
    revoked: bool = False
    last_used_at: int | None = None  # to within LAST_USED_GRANULARITY_SECONDS; None: never used


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id(api_key: str) -> str:
    """What the authorizer's context names a key by (rate limits count against it): never the key."""
    return hash_key(api_key)[:16]


def parse_bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def store_key(repo: Repository, api_key: str, tenant_id: str, name: str = "") -> ApiKeyRecord:
    """Store a key (only its hash); idempotent for the same key and tenant."""
    if not TENANT_PATTERN.match(tenant_id):
        raise ValueError(f"tenant id must match {TENANT_PATTERN.pattern}")
    record = ApiKeyRecord(key_hash=hash_key(api_key), tenant_id=tenant_id, name=name, created_at=now())
    try:
        repo.table.put_item(
            Item={
                "PK": API_KEYS_PK,
                "SK": API_KEY_PREFIX + record.key_hash,
                **{k: v for k, v in asdict(record).items() if v is not None},  # never used: no last_used_at
            },
            ConditionExpression=Attr("PK").not_exists() | Attr("tenant_id").eq(tenant_id),
        )
    except repo.client.exceptions.ConditionalCheckFailedException as error:
        raise ConcurrentModification("this key already belongs to another tenant") from error
    return record


def create_key(repo: Repository, tenant_id: str, name: str = "") -> tuple[str, ApiKeyRecord]:
    api_key = "sk-sa-" + secrets.token_urlsafe(32)
    return api_key, store_key(repo, api_key, tenant_id, name)


def tenant_for_key(repo: Repository, api_key: str) -> str | None:
    """The key's tenant, or None for an unknown or revoked key; records the key's use."""
    item = repo.table.get_item(Key={"PK": API_KEYS_PK, "SK": API_KEY_PREFIX + hash_key(api_key)}).get("Item")
    if not item or item.get("revoked"):
        return None
    record_use(repo, item)
    return str(item["tenant_id"])


def record_use(repo: Repository, item: dict[str, Any]) -> None:
    """Set ``last_used_at`` if the stored one is older than the granularity (else no write).

    Conditional, so concurrent authorizers write once and a deleted key is not recreated. A
    failure is logged, never raised: bookkeeping must not refuse a valid key.
    """
    current = time.time()
    stale = int(current) - LAST_USED_GRANULARITY_SECONDS
    if item.get("last_used_at") is not None and int(item["last_used_at"]) > stale:
        return
    try:
        repo.table.update_item(
            Key={"PK": item["PK"], "SK": item["SK"]},
            UpdateExpression="SET last_used_at = :now",
            ConditionExpression=Attr("PK").exists()
            & (Attr("last_used_at").not_exists() | Attr("last_used_at").lte(stale)),
            ExpressionAttributeValues={":now": int(current)},
        )
    except ClientError as error:
        if not is_conditional_failure(error):
            logger.warning(
                "could not record an API key's use",
                extra={"key_hash": str(item.get("key_hash", ""))[:12], "error": str(error)},
            )


def list_keys(repo: Repository) -> list[ApiKeyRecord]:
    records: list[ApiKeyRecord] = []
    kwargs: dict[str, object] = {"KeyConditionExpression": Key("PK").eq(API_KEYS_PK)}
    while True:
        response = repo.table.query(**kwargs)
        for item in response["Items"]:
            records.append(
                ApiKeyRecord(
                    key_hash=str(item["key_hash"]),
                    tenant_id=str(item["tenant_id"]),
                    name=str(item.get("name", "")),
                    created_at=int(item["created_at"]),
                    revoked=bool(item.get("revoked", False)),
                    last_used_at=int(item["last_used_at"]) if item.get("last_used_at") is not None else None,
                )
            )
        if "LastEvaluatedKey" not in response:
            return records
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def revoke_key(repo: Repository, key_hash_prefix: str) -> ApiKeyRecord:
    """Revoke the key whose hash starts with the given prefix (as `list` shows it)."""
    matches = [r for r in list_keys(repo) if r.key_hash.startswith(key_hash_prefix)]
    if len(matches) != 1:
        raise ValueError(f"{len(matches)} keys match '{key_hash_prefix}'; give a longer hash prefix")
    repo.table.update_item(
        Key={"PK": API_KEYS_PK, "SK": API_KEY_PREFIX + matches[0].key_hash},
        UpdateExpression="SET revoked = :t",
        ExpressionAttributeValues={":t": True},
    )
    return ApiKeyRecord(**{**asdict(matches[0]), "revoked": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="assistants-keys", description="Manage Serverless Assistants API keys.")
    parser.add_argument("--table", help="DynamoDB table (default: $TABLE_NAME)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key for a tenant and print it once")
    create.add_argument("tenant")
    create.add_argument("--name", default="")
    listing = commands.add_parser("list", help="list keys (hash prefix, tenant, state, last use, name)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line, full hashes")
    revoke = commands.add_parser("revoke", help="revoke a key by its hash prefix")
    revoke.add_argument("hash_prefix")
    args = parser.parse_args(argv)
    repo = Repository(args.table)
    try:
        if args.command == "create":
            api_key, record = create_key(repo, args.tenant, args.name)
            print(json.dumps({"api_key": api_key, "tenant_id": record.tenant_id, "key_hash": record.key_hash[:12]}))
        elif args.command == "list":
            for record in list_keys(repo):
                if args.json:
                    print(json.dumps(asdict(record)))
                    continue
                state = "revoked" if record.revoked else "active"
                print(
                    f"{record.key_hash[:12]}  {record.tenant_id:<24} {state:<8} {_last_used(record):<20} {record.name}"
                )
        else:
            record = revoke_key(repo, args.hash_prefix)
            print(f"revoked {record.key_hash[:12]} of tenant {record.tenant_id}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _last_used(record: ApiKeyRecord) -> str:
    if record.last_used_at is None:
        return "never used"
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(record.last_used_at))


if __name__ == "__main__":
    sys.exit(main())
