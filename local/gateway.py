"""A small API Gateway in front of the template's functions, as an ASGI app.

It routes each request to the function whose ``Api`` event matches (from the template), runs
the real Lambda authorizer first, and passes the authorizer context on as the
``x-amzn-request-context`` header, as the Lambda Web Adapter does. The functions it calls (FastAPI
apps) run in this process.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import template as cfn
from .lambda_runtime import FAULTS_PATH, Functions, api_error

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    pattern: re.Pattern[str]
    function: str
    authorized: bool

    @property
    def specificity(self) -> tuple[int, int]:
        segments = self.path.strip("/").split("/")
        return (sum(1 for s in segments if not s.startswith("{")), len(segments))


def routes_from_template(template: dict[str, Any], specs: dict[str, cfn.FunctionSpec]) -> list[Route]:
    routes = []
    for name, spec in specs.items():
        for event in spec.events.values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            path = props["Path"]
            regex = "^" + re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "/?$"
            authorizer = (props.get("Auth") or {}).get("Authorizer")
            routes.append(Route(props["Method"].upper(), path, re.compile(regex), name, authorizer != "NONE"))
    # API Gateway prefers literal segments over path parameters (/threads/runs over /threads/{id}).
    return sorted(routes, key=lambda r: r.specificity, reverse=True)


def _authorizer_function(template: dict[str, Any]) -> tuple[str, int]:
    for api in cfn.resources(template, "AWS::Serverless::Api").values():
        auth = api["Properties"].get("Auth", {})
        default = auth.get("DefaultAuthorizer")
        if default:
            config = auth["Authorizers"][default]
            function_arn = config["FunctionArn"]
            name = function_arn["Fn::GetAtt"][0]
            ttl = int(config.get("Identity", {}).get("ReauthorizeEvery", 300))
            return name, ttl
    raise RuntimeError("template.yaml declares no default authorizer")


def gateway_functions(template: dict[str, Any], specs: dict[str, cfn.FunctionSpec]) -> set[str]:
    """The functions API Gateway invokes: those with an ``Api`` event, and the authorizer."""
    return {route.function for route in routes_from_template(template, specs)} | {_authorizer_function(template)[0]}


class Gateway:
    """An ASGI app that plays API Gateway in front of the template's functions."""

    def __init__(
        self,
        template: dict[str, Any],
        functions: Functions,
        *,
        open_keys: bool,
        auto_tenant: Callable[[str], None],
        forward_fault: Callable[[bytes], tuple[int, bytes]],
    ) -> None:
        self.functions = functions
        self.function_names = set(cfn.functions(template))
        self.forward_fault = forward_fault  # for functions that the emulated AWS runs
        self.routes = routes_from_template(template, functions.specs)
        self.authorizer, self.cache_seconds = _authorizer_function(template)
        self.open_keys = open_keys
        self.auto_tenant = auto_tenant
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == FAULTS_PATH and method == "POST":
            return await self._inject_fault(receive, send)
        route = next((r for r in self.routes if r.method == method and r.pattern.match(path)), None)
        if route is None:
            status, body = api_error(404, f"Invalid URL ({method} {path})")
            return await _respond(send, status, body)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"x-amzn-request-context"]
        request_id = str(uuid.uuid4())
        context: dict[str, Any] = {"stage": "prod", "requestId": request_id, "resourcePath": route.path}
        if route.authorized:
            token = next((v.decode() for k, v in headers if k.lower() == b"authorization"), None)
            authorizer_context = await self._authorize(token, method, path) if token else None
            if authorizer_context is None:
                status, body = api_error(401, "Incorrect API key provided.", "invalid_api_key")
                return await _respond(send, status, body)
            context["authorizer"] = authorizer_context
        headers.append((b"x-amzn-request-context", json.dumps(context).encode()))
        await self.functions.asgi_app(route.function)({**scope, "headers": headers}, receive, send)

    async def _inject_fault(self, receive: Any, send: Any) -> None:
        """Local only: make the next N invocations of a function crash, as a Lambda error would."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body or b"{}")
        name = request.get("function")
        if name not in self.function_names:
            status, payload = api_error(400, f"unknown function {name!r}")
        elif name in self.functions.specs:
            status, payload = self.functions.inject_fault(request)
        else:
            import anyio.to_thread

            status, payload = await anyio.to_thread.run_sync(self.forward_fault, body)
        await _respond(send, status, payload)

    async def _authorize(self, token: str, method: str, path: str) -> dict[str, Any] | None:
        cached = self._cache.get(token)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._authorize_sync, token, method, path)

    def _authorize_sync(self, token: str, method: str, path: str) -> dict[str, Any] | None:
        from assistants_core.api_keys import parse_bearer

        key = parse_bearer(token)
        if key and self.open_keys:
            self.auto_tenant(key)
        event = {
            "type": "TOKEN",
            "authorizationToken": token,
            "methodArn": f"arn:aws:execute-api:{cfn.REGION}:{cfn.ACCOUNT}:local/prod/{method}{path}",
        }
        try:
            result = self.functions.invoke(self.authorizer, event)
        except Exception:
            return None
        context = {**result.get("context", {}), "principalId": result.get("principalId")}
        if self.cache_seconds:
            self._cache[token] = (time.monotonic() + self.cache_seconds, context)
        return context


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
