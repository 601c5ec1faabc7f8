"""API Gateway TOKEN authorizer: maps `Authorization: Bearer <key>` to a tenant.

Keys are looked up by their SHA-256 hash. The policy allows every route of the API so that
API Gateway can cache the decision per key; the tenant travels in the context as ``tenantId``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from assistants_core.api_keys import parse_bearer, tenant_for_key
from assistants_core.repository import default_repository

logger = Logger()


def _any_route(method_arn: str) -> str:
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*/*
    prefix, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{prefix}/{stage}/*/*"


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    api_key = parse_bearer(event.get("authorizationToken"))
    tenant = tenant_for_key(default_repository(), api_key) if api_key else None
    if tenant is None:
        raise Exception("Unauthorized")  # API Gateway answers 401 (see the gateway responses)
    return {
        "principalId": tenant,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": _any_route(event["methodArn"])}
            ],
        },
        "context": {"tenantId": tenant},
    }
