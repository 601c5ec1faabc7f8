"""The local stack: the whole API on one port, no Docker, no AWS account.

Two processes, split where AWS splits: API Gateway and the API functions it calls, and the AWS
services with the functions Step Functions invokes. What runs where, and stands in for what:

- This process (``python -m tests.harness.local_stack``, what ``make dev`` runs) serves HOST:PORT.
  A small gateway plays API Gateway: it routes each request to the function whose ``Api`` event
  matches (from the template), runs the real Lambda authorizer first, and passes the authorizer
  context on as the ``x-amzn-request-context`` header, as the Lambda Web Adapter does. Those
  functions (FastAPI apps) run in this process; the others are not even imported here.
- A child process (:mod:`tests.harness.aws_process`) emulates the AWS services (DynamoDB, Step
  Functions, Lambda's control plane) with moto in server mode, on ``LOCAL_AWS_PORT`` or a free
  port. The app reaches them only through ``AWS_ENDPOINT_URL``. It creates the tables, the
  state machine (the real ASL file with its DefinitionSubstitutions) and the functions by
  reading ``template.yaml``, and runs the handlers of the functions Step Functions invokes
  (moto cannot run code without Docker). It logs where this process logs, and exits with it.

``/health`` answers only once both are ready. ``POST /_local/faults {"function": name, "times":
n}`` (tests only) makes the next n invocations of a function crash, in whichever process runs it.

Keys: with ``ASSISTANTS_API_KEYS`` (``key=tenant,key2=tenant2``; a bare ``key`` is its own
tenant) only those keys work. Without it, any key works and each distinct key is its own
tenant, so the OpenAI SDK runs with whatever key it has.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import template as cfn
from .aws_process import FAULTS_PATH, AWSProcess, Functions, api_error, apply_function_environment, planned_resolver
from .aws_process import free_port as free_port  # re-exported: tests and the benchmark use it

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


# ---------------------------------------------------------------- the gateway


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


# ---------------------------------------------------------------- assembly


def tenant_for_open_key(api_key: str) -> str:
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def parse_key_list(raw: str) -> dict[str, str]:
    keys = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        key, _, tenant = entry.partition("=")
        keys[key.strip()] = tenant.strip() or tenant_for_open_key(key.strip())
    return keys


@dataclass
class LocalStack:
    app: Gateway
    aws: AWSProcess
    functions: Functions


def build(aws_port: int | None = None) -> LocalStack:
    """Start the emulated AWS (a child process) and return the gateway app once it is ready.

    The caller stops ``aws`` when done (the child also exits by itself when this process does).
    """
    template = cfn.load_template()
    aws = AWSProcess(aws_port)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": aws.endpoint_url,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": cfn.REGION,
            "AWS_REGION": cfn.REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    specs = cfn.functions(template)
    served_here = gateway_functions(template, specs)
    aws.start(name for name in specs if name not in served_here)  # inherits the environment so far
    try:
        functions = Functions({name: spec for name, spec in specs.items() if name in served_here})
        apply_function_environment(functions.specs, planned_resolver(template))
        functions.load_all()  # while the emulated AWS starts, on another core
        aws.wait_ready()

        from assistants_core.api_keys import store_key
        from assistants_core.repository import Repository

        raw_keys = os.environ.get("ASSISTANTS_API_KEYS", "").strip()
        known: set[str] = set()

        def auto_tenant(api_key: str) -> None:
            if api_key not in known:
                store_key(Repository(), api_key, tenant_for_open_key(api_key), name="local (auto)")
                known.add(api_key)

        for key, tenant in parse_key_list(raw_keys).items():
            store_key(Repository(), key, tenant, name="local (ASSISTANTS_API_KEYS)")
        gateway = Gateway(
            template, functions, open_keys=not raw_keys, auto_tenant=auto_tenant, forward_fault=aws.inject_fault
        )
    except BaseException:
        aws.stop()
        raise
    return LocalStack(app=gateway, aws=aws, functions=functions)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so ``main`` stops the emulated AWS before exiting."""
    raise SystemExit(128 + signum)


def main() -> None:
    import uvicorn

    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # uvicorn restores it and re-raises after shutdown
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    aws_port = int(os.environ["LOCAL_AWS_PORT"]) if os.environ.get("LOCAL_AWS_PORT") else None
    try:
        stack = build(aws_port)
    except KeyboardInterrupt:  # Ctrl-C while starting: build() stopped the emulated AWS already
        raise SystemExit(130) from None
    try:
        url = f"http://{host}:{port}"
        keys_note = (
            "keys from ASSISTANTS_API_KEYS"
            if os.environ.get("ASSISTANTS_API_KEYS")
            else "any API key works; each distinct key is its own tenant"
        )
        print(
            f"""
Serverless Assistants local stack (emulated AWS at {stack.aws.endpoint_url}, pid {stack.aws.pid})
  API:     {url}/v1   ({keys_note})
  Health:  {url}/health

  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="sk-local")
  assistant = client.beta.assistants.create(model="openai/gpt-4o-mini", name="Helper")
""",
            flush=True,
        )
        uvicorn.run(stack.app, host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "warning").lower())
    finally:
        stack.aws.stop()


if __name__ == "__main__":
    main()
