"""The local stack: the whole API on one port, no Docker, no AWS account.

What runs, and what stands in for what:

- AWS services (DynamoDB, Step Functions, Lambda's control plane) are emulated by moto in
  server mode, started here. The app reaches them only through ``AWS_ENDPOINT_URL``.
- The tables, the state machine (the real ASL file with its DefinitionSubstitutions) and the
  functions are created by reading ``template.yaml``.
- Lambda invocations made by Step Functions are dispatched in-process to the handler that the
  template names (moto cannot run code without Docker).
- A small gateway plays API Gateway: it routes each request to the function whose ``Api``
  event matches (from the template), runs the real Lambda authorizer first, and passes the
  authorizer context on as the ``x-amzn-request-context`` header, as the Lambda Web Adapter does.

Keys: with ``ASSISTANTS_API_KEYS`` (``key=tenant,key2=tenant2``; a bare ``key`` is its own
tenant) only those keys work. Without it, any key works and each distinct key is its own
tenant, so the OpenAI SDK runs with whatever key it has.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import template as cfn

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

# Variables that configure the Lambda Web Adapter itself, not the app: never applied locally.
ADAPTER_ONLY_VARIABLES = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "PORT", "AWS_LWA_PORT"}
ROLE_ARN = f"arn:aws:iam::{cfn.ACCOUNT}:role/local-stack"
FAULTS_PATH = "/_local/faults"  # not part of the API: lets tests crash a function on purpose


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that our handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.time() + 900)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{cfn.REGION}:{cfn.ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


class Functions:
    """The template's functions, loaded from their folders exactly as Lambda would."""

    def __init__(self, specs: dict[str, cfn.FunctionSpec]) -> None:
        self.specs = specs
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.RLock()
        self.faults: dict[str, int] = {}  # function name -> invocations that crash (tests)

    def module(self, name: str) -> ModuleType:
        with self._lock:
            if name not in self._modules:
                spec = self.specs[name]
                path = spec.code_uri / "app.py"
                module_spec = importlib.util.spec_from_file_location(f"lambda_functions.{name}", path)
                assert module_spec and module_spec.loader, path
                module = importlib.util.module_from_spec(module_spec)
                module_spec.loader.exec_module(module)
                self._modules[name] = module
            return self._modules[name]

    def handler(self, name: str) -> Callable[[Any, Any], Any]:
        attribute = self.specs[name].handler.rsplit(".", 1)[-1]
        return getattr(self.module(name), attribute)  # type: ignore[no-any-return]

    def asgi_app(self, name: str) -> ASGIApp:
        """The FastAPI app that the function serves (behind mangum or the Web Adapter)."""
        return self.module(name).app  # type: ignore[no-any-return]

    def invoke(self, name: str, payload: Any) -> Any:
        with self._lock:
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                raise RuntimeError(f"injected fault in {name}")
        return self.handler(name)(payload, LambdaContext(function_name=name))


class EmulatedAWS:
    """moto in server mode, executing real ASL, with resources built from the template."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.physical: dict[str, str] = {}
        self.arns: dict[str, str] = {}

    def start(self) -> None:
        # moto's state machine interpreter calls services on localhost:$MOTO_PORT: set it first.
        os.environ["MOTO_PORT"] = str(self.port)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        from .moto_server import SerializedMotoServer  # imports moto: after MOTO_PORT is set

        _cache_asl_parsing()
        from .moto_transactions import install as cheap_transactions

        cheap_transactions()
        self._server = SerializedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        import urllib.request

        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/config",
            data=json.dumps(
                {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            ).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

    def stop(self) -> None:
        self._server.stop()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=cfn.REGION)

    def create_resources(self, template: dict[str, Any], functions: Functions) -> None:
        for name, parameter in template.get("Parameters", {}).items():
            if "Default" in parameter:
                self.physical[name] = str(parameter["Default"])
        self.physical.update(cfn.create_tables(self.client("dynamodb"), template))
        self.client("iam").create_role(
            RoleName=ROLE_ARN.rsplit("/", 1)[-1],
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        lam = self.client("lambda")
        for name in functions.specs:
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=ROLE_ARN,
                Handler=functions.specs[name].handler,
                Code={"ZipFile": _empty_zip()},
            )["FunctionArn"]
            self.physical[name] = name
            self.arns[name] = arn
        sfn = self.client("stepfunctions")
        resolver = self.resolver()
        for name in cfn.resources(template, "AWS::Serverless::StateMachine"):
            definition = _shorten_waits(cfn.state_machine_definition(name, resolver, template))
            kind = template["Resources"][name]["Properties"].get("Type", "STANDARD")
            arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE_ARN, type=kind)[
                "stateMachineArn"
            ]
            self.physical[name] = arn  # !Ref of a state machine is its ARN
            self.arns[name] = arn

    def resolver(self) -> cfn.Resolver:
        return cfn.Resolver(self.physical, self.arns)

    def dispatch_lambda_to(self, functions: Functions) -> None:
        """Make moto's Lambda run our real handlers in this process."""
        from moto.awslambda_simple.models import LambdaSimpleBackend

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            name = function_name.split(":function:")[-1].split(":")[0]
            try:
                result = functions.invoke(name, json.loads(body) if body else {})
            except Exception as error:  # surfaces to Step Functions as a Lambda function error
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
            return json.dumps(result).encode()

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]


def _cache_asl_parsing() -> None:
    """Parse each state machine definition once, not once per execution.

    moto parses ASL with a pure-Python ANTLR parser (about 25 ms of CPU per execution for
    run.asl.json, holding the GIL the whole stack shares). The parsed program keeps no
    execution state (that lives in the interpreter's Environment), so one parse serves all.
    """
    import functools

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    if not hasattr(AmazonStateLanguageParser.parse, "cache_info"):
        AmazonStateLanguageParser.parse = staticmethod(functools.lru_cache(maxsize=32)(AmazonStateLanguageParser.parse))  # type: ignore[method-assign]


def _shorten_waits(definition: str) -> str:
    """With LOCAL_TASK_TIMEOUT_SECONDS, callback waits time out sooner (tests of expiry)."""
    override = os.environ.get("LOCAL_TASK_TIMEOUT_SECONDS")
    if not override:
        return definition
    parsed = json.loads(definition)
    for state in parsed["States"].values():
        if str(state.get("Resource", "")).endswith(".waitForTaskToken") and "TimeoutSeconds" in state:
            state["TimeoutSeconds"] = int(override)
    return json.dumps(parsed)


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


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


def _error(status: int, message: str, code: str | None = None) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode()


class Gateway:
    """An ASGI app that plays API Gateway in front of the template's functions."""

    def __init__(
        self,
        template: dict[str, Any],
        functions: Functions,
        *,
        open_keys: bool,
        auto_tenant: Callable[[str], None],
    ) -> None:
        self.functions = functions
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
            status, body = _error(404, f"Invalid URL ({method} {path})")
            return await _respond(send, status, body)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"x-amzn-request-context"]
        request_id = str(uuid.uuid4())
        context: dict[str, Any] = {"stage": "prod", "requestId": request_id, "resourcePath": route.path}
        if route.authorized:
            token = next((v.decode() for k, v in headers if k.lower() == b"authorization"), None)
            authorizer_context = await self._authorize(token, method, path) if token else None
            if authorizer_context is None:
                status, body = _error(401, "Incorrect API key provided.", "invalid_api_key")
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
        if name not in self.functions.specs:
            status, payload = _error(400, f"unknown function {name!r}")
            return await _respond(send, status, payload)
        self.functions.faults[name] = int(request.get("times", 1))
        await _respond(send, 200, json.dumps({"function": name, "times": self.functions.faults[name]}).encode())

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
    aws: EmulatedAWS
    functions: Functions


def build(aws_port: int | None = None) -> LocalStack:
    """Start the emulated AWS, create the template's resources, and return the gateway app."""
    template = cfn.load_template()
    aws = EmulatedAWS(aws_port)
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
    aws.start()
    specs = cfn.functions(template)
    functions = Functions(specs)
    aws.create_resources(template, functions)
    aws.dispatch_lambda_to(functions)
    _apply_function_environment(specs, aws.resolver())
    layer = str(cfn.ROOT / "layers" / "core" / "python")
    if layer not in sys.path:
        sys.path.insert(0, layer)

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
    gateway = Gateway(template, functions, open_keys=not raw_keys, auto_tenant=auto_tenant)
    for name in specs:  # import every function now, so the first request is not slow
        functions.module(name)
    return LocalStack(app=gateway, aws=aws, functions=functions)


def _apply_function_environment(specs: dict[str, cfn.FunctionSpec], resolver: cfn.Resolver) -> None:
    """All functions share this process, so their template environments are merged into it."""
    merged: dict[str, str] = {}
    for spec in specs.values():
        for name, value in spec.environment.items():
            if name in ADAPTER_ONLY_VARIABLES:
                continue
            try:
                resolved = str(resolver.resolve(value))
            except KeyError:
                continue  # a template parameter: keep the environment's own value or the code's default
            if name in merged and merged[name] != resolved:
                raise RuntimeError(f"functions disagree on {name}: {merged[name]!r} vs {resolved!r}")
            merged[name] = resolved
    for name, value in merged.items():
        os.environ.setdefault(name, value)


def main() -> None:
    import uvicorn

    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    aws_port = int(os.environ["LOCAL_AWS_PORT"]) if os.environ.get("LOCAL_AWS_PORT") else None
    stack = build(aws_port)
    url = f"http://{host}:{port}"
    keys_note = (
        "keys from ASSISTANTS_API_KEYS"
        if os.environ.get("ASSISTANTS_API_KEYS")
        else "any API key works; each distinct key is its own tenant"
    )
    print(
        f"""
Serverless Assistants local stack (emulated AWS at {stack.aws.endpoint_url})
  API:     {url}/v1   ({keys_note})
  Health:  {url}/health

  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="sk-local")
  assistant = client.beta.assistants.create(model="openai/gpt-4o-mini", name="Helper")
""",
        flush=True,
    )
    uvicorn.run(stack.app, host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "warning").lower())


if __name__ == "__main__":
    main()
