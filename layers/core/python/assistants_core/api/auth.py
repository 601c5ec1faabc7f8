"""Which tenant a request belongs to.

Authentication happens before the function runs: on AWS, API Gateway calls the Lambda
authorizer (``functions/authorizer``), which maps the API key to a tenant and passes
``tenantId`` (and ``keyId``, a hash prefix of the key, whose rate limits the request counts
against) in the request context. Mangum exposes that context as ``scope["aws.event"]``;
the Lambda Web Adapter (and the local stack's gateway) passes it as the
``x-amzn-request-context`` header.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from ..errors import AuthenticationError
from ..services.rate_limits import Caller

REQUEST_CONTEXT_HEADER = "x-amzn-request-context"


def request_context(request: Request) -> dict[str, Any]:
    event = request.scope.get("aws.event")
    if isinstance(event, dict):
        return dict(event.get("requestContext") or {})
    raw = request.headers.get(REQUEST_CONTEXT_HEADER)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def tenant_id(request: Request) -> str:
    """FastAPI dependency: the authenticated tenant, or a 401 in OpenAI's shape (async: it never blocks)."""
    authorizer = request_context(request).get("authorizer") or {}
    tenant = authorizer.get("tenantId") if isinstance(authorizer, dict) else None
    if not tenant:
        raise AuthenticationError(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    return str(tenant)


def caller_of(request: Request) -> Caller | None:
    """The API key a request counts against: the authorizer's ``keyId`` (its tenant when an
    older authorizer result has none); None for a route without the authorizer."""
    authorizer = request_context(request).get("authorizer") or {}
    if not isinstance(authorizer, dict) or not authorizer.get("tenantId"):
        return None
    tenant = str(authorizer["tenantId"])
    return Caller(tenant=tenant, key_id=str(authorizer.get("keyId") or tenant))


async def caller(request: Request) -> Caller | None:
    """FastAPI dependency: :func:`caller_of`."""
    return caller_of(request)
