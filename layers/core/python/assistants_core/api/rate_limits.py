"""The request rate limit, applied to every route of every API function (``create_app``).

A plain ASGI middleware rather than a dependency: it runs before routing and body parsing, so
a refused request costs one DynamoDB write and nothing else, and it adds the
``x-ratelimit-*-requests`` headers to every response, a streamed one included (they go with
its first bytes). Requests without an authorizer context (``/health``) are not counted.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RateLimitError
from ..repository import default_repository
from ..services.rate_limits import RequestQuota, request_limit, take_request
from .auth import caller_of

logger = Logger()


class RequestRateLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = request_limit() if scope["type"] == "http" else None
        caller = caller_of(Request(scope)) if limit is not None else None
        if limit is None or caller is None:
            return await self.app(scope, receive, send)
        try:
            quota: RequestQuota = await run_in_threadpool(take_request, default_repository(), caller, limit)
        except RateLimitError as refused:
            return await _refuse(scope, receive, send, refused)
        except Exception:
            # The limit protects the service; an outage of its table must not take the API down.
            logger.exception("request rate limit unavailable; request allowed", extra={"key_id": caller.key_id})
            return await self.app(scope, receive, send)
        extra = [(name.encode(), value.encode()) for name, value in quota.headers().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(scope: Scope, receive: Receive, send: Send, refused: RateLimitError) -> None:
    from .app import error_response  # the app module installs this middleware

    await error_response(refused)(scope, receive, send)
