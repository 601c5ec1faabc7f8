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
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import cpu_meter, meter
from . import template as cfn
from .lambda_runtime import FAULTS_PATH, Functions, api_error

Scope = MutableMapping[str, Any]


# API Gateway's own limit on a request body (REST APIs): larger is REQUEST_TOO_LARGE.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer of the API: TOKEN (the key, cached per key) or REQUEST (the headers)."""

    name: str
    function: str
    kind: str
    cache_seconds: int


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    pattern: re.Pattern[str]
    function: str
    authorizer: Authorizer | None

    @property
    def specificity(self) -> tuple[int, int]:
        segments = self.path.strip("/").split("/")
        return (sum(1 for s in segments if not s.startswith("{")), len(segments))


def _api(template: dict[str, Any]) -> dict[str, Any]:
    apis = list(cfn.resources(template, "AWS::Serverless::Api").values())
    if len(apis) != 1:
        raise RuntimeError(f"the local gateway serves one API; template.yaml declares {len(apis)}")
    return dict(apis[0]["Properties"])


def authorizers(template: dict[str, Any]) -> dict[str, Authorizer]:
    auth = _api(template).get("Auth", {})
    parameters = cfn.planned_resolver(template)  # ReauthorizeEvery may !Ref one
    found = {}
    for name, config in auth.get("Authorizers", {}).items():
        found[name] = Authorizer(
            name=name,
            function=config["FunctionArn"]["Fn::GetAtt"][0],
            kind=str(config.get("FunctionPayloadType", "TOKEN")).upper(),
            cache_seconds=int(parameters.resolve(config.get("Identity", {}).get("ReauthorizeEvery", 300))),
        )
    return found


def routes_from_template(template: dict[str, Any], specs: dict[str, cfn.FunctionSpec]) -> list[Route]:
    known = authorizers(template)
    default = _api(template).get("Auth", {}).get("DefaultAuthorizer")
    routes = []
    for name, spec in specs.items():
        for event in spec.events.values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            path = props["Path"]
            regex = "^" + re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "/?$"
            # A greedy parameter ({model+}) takes the rest of the path, slashes included.
            regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\+\\\}", r"(?P<\1>.+)", regex)
            chosen = (props.get("Auth") or {}).get("Authorizer", default)
            authorizer = None if chosen in (None, "NONE") else known[chosen]
            routes.append(Route(props["Method"].upper(), path, re.compile(regex), name, authorizer))
    # API Gateway prefers literal segments over path parameters (/threads/runs over /threads/{id}).
    return sorted(routes, key=lambda r: r.specificity, reverse=True)


def gateway_responses(template: dict[str, Any]) -> dict[str, tuple[int, bytes]]:
    """The API's GatewayResponses (what API Gateway itself answers), by type."""
    responses = {}
    for kind, config in _api(template).get("GatewayResponses", {}).items():
        body = str((config.get("ResponseTemplates") or {}).get("application/json", "{}"))
        responses[kind] = (int(config.get("StatusCode", 500)), body.encode())
    return responses


def gateway_functions(template: dict[str, Any], specs: dict[str, cfn.FunctionSpec]) -> set[str]:
    """The functions API Gateway invokes: those with an ``Api`` event, and the authorizers."""
    return {route.function for route in routes_from_template(template, specs)} | {
        authorizer.function for authorizer in authorizers(template).values()
    }


class StageThrottle:
    """API Gateway's stage throttling (the Api's ``MethodSettings`` for ``/*`` ``*``): one token
    bucket for every request of the stage, all keys together, as API Gateway's outer bound."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def stage_throttle(template: dict[str, Any]) -> StageThrottle | None:
    """The stage's throttling from the template (its parameters resolved); None if it sets none."""
    resolver = cfn.planned_resolver(template)
    for setting in _api(template).get("MethodSettings") or []:
        if setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*":
            rate = setting.get("ThrottlingRateLimit")
            burst = setting.get("ThrottlingBurstLimit")
            if rate is not None and burst is not None:
                return StageThrottle(float(resolver.resolve(rate)), float(resolver.resolve(burst)))
    return None


class Denied(Exception):
    """The authorizer's policy denies the request: API Gateway's ACCESS_DENIED."""


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
        forward_meter: Callable[[str], dict[str, Any]] = lambda method: {},
        aws_cpu: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.functions = functions
        self.forward_meter = forward_meter  # the emulated AWS's counts
        self.aws_cpu = aws_cpu  # the emulated AWS process's CPU meters (see local.cpu_meter)
        self.function_names = set(cfn.functions(template))
        self.forward_fault = forward_fault  # for functions that the emulated AWS runs
        self.routes = routes_from_template(template, functions.specs)
        self.responses = gateway_responses(template)
        self.throttle = stage_throttle(template)
        self.open_keys = open_keys
        self.auto_tenant = auto_tenant
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

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
        if path == meter.PATH and meter.ENABLED:
            return await self._meter(method, send)
        if path == cpu_meter.PATH and method == "GET":
            return await self._cpu(send)
        route = next((r for r in self.routes if r.method == method and r.pattern.match(path)), None)
        if route is None:  # API Gateway's answer to a method and path no route has
            return await self._gateway_response(send, "MISSING_AUTHENTICATION_TOKEN", 403)
        if self.throttle is not None and not self.throttle.allow():  # before the authorizer, as on AWS
            return await self._gateway_response(send, "THROTTLED", 429)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"x-amzn-request-context"]
        length = next((v for k, v in headers if k.lower() == b"content-length"), b"")
        if length.isdigit() and int(length) > MAX_PAYLOAD_BYTES:
            return await self._gateway_response(send, "REQUEST_TOO_LARGE", 413)
        request_id = str(uuid.uuid4())
        context: dict[str, Any] = {"stage": "prod", "requestId": request_id, "resourcePath": route.path}
        if route.authorizer is not None:
            try:
                authorizer_context = await self._authorize(route, method, path, headers)
            except Denied:
                return await self._gateway_response(send, "ACCESS_DENIED", 403)
            if authorizer_context is None:
                return await self._gateway_response(send, "UNAUTHORIZED", 401)
            context["authorizer"] = authorizer_context
        headers.append((b"x-amzn-request-context", json.dumps(context).encode()))
        app = self.functions.asgi_app(route.function)
        with cpu_meter.charging(route.function):  # this request's event loop steps and threads
            if not meter.ENABLED:
                return await app({**scope, "headers": headers}, receive, send)
            meter.METER.add_api_request()
            with meter.METER.invocation(route.function):  # a streamed answer bills until its last byte
                await app({**scope, "headers": headers}, receive, send)

    async def _cpu(self, send: Any) -> None:
        """Local only: CPU seconds per function so far, in each process (see local.cpu_meter)."""
        import anyio.to_thread

        body = {"api": cpu_meter.snapshot()}
        if self.aws_cpu is not None:
            body["aws"] = await anyio.to_thread.run_sync(self.aws_cpu)
        await _respond(send, 200, json.dumps(body).encode())

    async def _gateway_response(self, send: Any, kind: str, default_status: int) -> None:
        status, body = self.responses.get(kind) or api_error(default_status, kind.replace("_", " ").lower())
        await _respond(send, status, body)

    async def _inject_fault(self, receive: Any, send: Any) -> None:
        """Local only: make the next N invocations of a function crash, as a Lambda error would, or
        (``{"operation": ...}``) the next N calls of an emulated AWS operation fail."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body or b"{}")
        name = request.get("function")
        if isinstance(request, dict) and "operation" in request:  # an AWS operation: the emulated AWS fails it
            import anyio.to_thread

            status, payload = await anyio.to_thread.run_sync(self.forward_fault, body)
        elif name not in self.function_names:
            status, payload = api_error(400, f"unknown function {name!r}")
        elif name in self.functions.specs:
            status, payload = self.functions.inject_fault(request)
        else:
            import anyio.to_thread

            status, payload = await anyio.to_thread.run_sync(self.forward_fault, body)
        await _respond(send, status, payload)

    async def _meter(self, method: str, send: Any) -> None:
        """Local only: what both processes counted (see :mod:`local.meter`); DELETE resets it."""
        import anyio.to_thread

        if method == "DELETE":
            meter.METER.reset()
        theirs = await anyio.to_thread.run_sync(self.forward_meter, method)
        await _respond(send, 200, json.dumps(meter.merge([meter.METER.snapshot(), theirs])).encode())

    async def _authorize(
        self, route: Route, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> dict[str, Any] | None:
        """The authorizer's context; None when it rejects the key (401), Denied when its policy
        denies the request (403, or what the template's ACCESS_DENIED response says)."""
        authorizer = route.authorizer
        assert authorizer is not None
        token = next((v.decode() for k, v in headers if k.lower() == b"authorization"), None)
        if not token:
            return None  # API Gateway answers 401 without calling the authorizer
        cached = self._cache.get((authorizer.name, token))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._authorize_sync, route, method, path, headers, token)

    def _authorize_sync(
        self, route: Route, method: str, path: str, headers: list[tuple[bytes, bytes]], token: str
    ) -> dict[str, Any] | None:
        from assistants_core.api_keys import parse_bearer

        authorizer = route.authorizer
        assert authorizer is not None
        key = parse_bearer(token)
        if key and self.open_keys:
            self.auto_tenant(key)
        method_arn = f"arn:aws:execute-api:{cfn.REGION}:{cfn.ACCOUNT}:local/prod/{method}{path}"
        event: dict[str, Any]
        if authorizer.kind == "REQUEST":
            plain = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
            event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                "resource": route.path,
                "path": path,
                "httpMethod": method,
                "headers": plain,
                "multiValueHeaders": {k: [v] for k, v in plain.items()},
                "requestContext": {"stage": "prod", "resourcePath": route.path, "httpMethod": method},
            }
        else:
            event = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
        try:
            result = self.functions.invoke(authorizer.function, event)
        except Exception:
            return None
        statements = (result.get("policyDocument") or {}).get("Statement") or []
        if any(s.get("Effect") == "Deny" for s in statements) or not any(
            s.get("Effect") == "Allow" for s in statements
        ):
            raise Denied
        context = {**result.get("context", {}), "principalId": result.get("principalId")}
        if authorizer.cache_seconds:
            self._cache[(authorizer.name, token)] = (time.monotonic() + authorizer.cache_seconds, context)
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
