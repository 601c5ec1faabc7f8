"""API Gateway authorizer: maps `Authorization: Bearer <key>` to a tenant.

Keys are looked up by their SHA-256 hash. The policy allows every route of the API so that
API Gateway can cache the decision per key; the tenant travels in the context as ``tenantId``.

Two configurations share this function (see template.yaml): a TOKEN authorizer for most
routes, and a REQUEST authorizer for the upload routes, which also sees the headers and denies
a body larger than one Lambda invocation can carry (API Gateway then answers 413).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from assistants_core.api_keys import key_id, parse_bearer, tenant_for_key
from assistants_core.repository import default_repository
from assistants_core.request_size import MAX_REQUEST_BYTES

logger = Logger()


def _any_route(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*/*
    prefix, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{prefix}/{stage}/*/*"


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _policy(tenant: str, effect: str, resource: str, key: str) -> dict[str, Any]:
    return {
        "principalId": tenant,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        # keyId: whose rate limits the request counts against (a hash prefix, never the key).
        "context": {"tenantId": tenant, "keyId": key},
    }


@logger.inject_lambda_context(log_event=False)  # never, whatever POWERTOOLS_LOGGER_LOG_EVENT says: it holds the key
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = event.get("type") == "REQUEST"
    token = _header(event, "authorization") if request else event.get("authorizationToken")
    api_key = parse_bearer(token)
    tenant = tenant_for_key(default_repository(), api_key) if api_key else None
    if tenant is None:
        raise Exception("Unauthorized")  # API Gateway answers 401 (see the gateway responses)
    key = key_id(api_key or "")
    if request:
        length = _header(event, "content-length") or ""
        if length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            logger.info("request too large for Lambda", extra={"bytes": int(length), "limit": MAX_REQUEST_BYTES})
            return _policy(tenant, "Deny", event["methodArn"], key)
        # Not cached (ReauthorizeEvery 0): allow exactly this request.
        return _policy(tenant, "Allow", event["methodArn"], key)
    return _policy(tenant, "Allow", _any_route(event["methodArn"]), key)
