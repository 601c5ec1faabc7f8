"""The emulated AWS of the local stack, in a process of its own: what the Step Functions service is.

``python -m tests.harness.aws_process --port P --functions A,B --ready-fd F`` (started by
:class:`AWSProcess`, not by hand) runs:

- moto in server mode on port P: DynamoDB, Step Functions executing the real ASL, Lambda's
  control plane, IAM;
- the template's resources (tables, role, functions, state machines), created in it;
- the Lambda runtime of the functions named by ``--functions`` (those Step Functions invokes):
  moto cannot run code without Docker, so its Lambda invoke calls the real handler here.

It writes a line to fd F once all that is ready, and exits when its stdin reaches EOF, which
happens when the parent exits however it exits (even SIGKILL). It ignores SIGINT: Ctrl-C reaches
the whole process group, and the parent decides when the emulated AWS goes.

Being a process of its own, it has its own GIL: moto's state machine threads and the agent's
model turns do not compete with the API process's request handling and stream polling.

This module also holds what both processes share: the template's functions loaded as Lambda
loads them (:class:`Functions`) and their environment.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import template as cfn

# Variables that configure the Lambda Web Adapter itself, not the app: never applied locally.
ADAPTER_ONLY_VARIABLES = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "PORT", "AWS_LWA_PORT"}
ROLE_ARN = f"arn:aws:iam::{cfn.ACCOUNT}:role/local-stack"
FAULTS_PATH = "/_local/faults"  # not part of the API: lets tests crash a function on purpose
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_error(status: int, message: str, code: str | None = None) -> tuple[int, bytes]:
    """An error in the OpenAI shape, as the API functions answer."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode()


# ---------------------------------------------------------------- the Lambda runtime


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
        return function_arn(self.function_name)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


class Functions:
    """Some of the template's functions, loaded from their folders exactly as Lambda would."""

    def __init__(self, specs: dict[str, cfn.FunctionSpec]) -> None:
        self.specs = specs
        layer = str(cfn.ROOT / "layers" / "core" / "python")  # the layer, on the path as /opt/python is
        if layer not in sys.path:
            sys.path.insert(0, layer)
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

    def asgi_app(self, name: str) -> Any:
        """The FastAPI app that the function serves (behind mangum or the Web Adapter)."""
        return self.module(name).app

    def invoke(self, name: str, payload: Any) -> Any:
        with self._lock:
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                raise RuntimeError(f"injected fault in {name}")
        return self.handler(name)(payload, LambdaContext(function_name=name))

    def inject_fault(self, request: dict[str, Any]) -> tuple[int, bytes]:
        """``{"function": name, "times": n}``: the next n invocations of name crash."""
        name = request.get("function")
        if name not in self.specs:
            return api_error(400, f"unknown function {name!r}")
        with self._lock:
            self.faults[name] = int(request.get("times", 1))
            return 200, json.dumps({"function": name, "times": self.faults[name]}).encode()

    def load_all(self) -> None:
        """Import every function now, so that its first invocation is not slow."""
        for name in self.specs:
            self.module(name)


def apply_function_environment(specs: dict[str, cfn.FunctionSpec], resolver: cfn.Resolver) -> None:
    """Functions that share a process share its environment: merge their template environments."""
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


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{cfn.REGION}:{cfn.ACCOUNT}:function:{name}"


def planned_resolver(template: dict[str, Any]) -> cfn.Resolver:
    """The physical names and ARNs the emulated AWS gives the template's resources.

    Known in advance, so the API process can set its functions' environment and import them
    while the emulated AWS is still starting; :meth:`EmulatedAWS.create_resources` checks that
    moto gives exactly these.
    """
    physical = {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}
    physical.update({name: name for name in cfn.table_definitions(template)})
    arns: dict[str, str] = {}
    for name in cfn.resources(template, "AWS::Serverless::Function"):
        physical[name] = name
        arns[name] = function_arn(name)
    for name in cfn.resources(template, "AWS::Serverless::StateMachine"):
        arn = f"arn:aws:states:{cfn.REGION}:{cfn.ACCOUNT}:stateMachine:{name}"
        physical[name] = arn  # !Ref of a state machine is its ARN
        arns[name] = arn
    return cfn.Resolver(physical, arns)


# ---------------------------------------------------------------- moto, in the child process


class EmulatedAWS:
    """moto in server mode, executing real ASL, with resources built from the template."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"

    def start(self, routes: dict[str, WSGIApp] | None = None) -> None:
        # moto's state machine interpreter calls services on localhost:$MOTO_PORT: set it first.
        os.environ["MOTO_PORT"] = str(self.port)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        from .moto_server import SerializedMotoServer  # imports moto: after MOTO_PORT is set

        _cache_asl_parsing()
        _share_service_clients()
        from .moto_item_size import install as item_size_as_dynamodb_measures_it
        from .moto_transactions import install as cheap_transactions

        cheap_transactions()
        item_size_as_dynamodb_measures_it()
        self._server = SerializedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False, routes=routes)
        self._server.start()
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

    def create_resources(self, template: dict[str, Any]) -> cfn.Resolver:
        """Create the template's resources in moto; they get the names :func:`planned_resolver` says."""
        resolver = planned_resolver(template)
        created: dict[str, str] = {}
        cfn.create_tables(self.client("dynamodb"), template)
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
        for name, spec in cfn.functions(template).items():
            created[name] = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=ROLE_ARN,
                Handler=spec.handler,
                Code={"ZipFile": _empty_zip()},
            )["FunctionArn"]
        sfn = self.client("stepfunctions")
        for name in cfn.resources(template, "AWS::Serverless::StateMachine"):
            definition = _shorten_waits(cfn.state_machine_definition(name, resolver, template))
            kind = template["Resources"][name]["Properties"].get("Type", "STANDARD")
            created[name] = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE_ARN, type=kind)[
                "stateMachineArn"
            ]
        if created != {name: resolver.arns[name] for name in created}:
            raise RuntimeError(f"moto named resources unlike planned_resolver: {created} vs {resolver.arns}")
        return resolver

    def dispatch_lambda_to(self, functions: Functions) -> None:
        """Make moto's Lambda run our real handlers in this process."""
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

        def run(function: str, payload: Any) -> tuple[Any, bool]:
            """The handler's result, or the error payload Lambda reports; and whether it failed."""
            name = function.split(":function:")[-1].split(":")[0]
            try:
                if name not in functions.specs:
                    raise RuntimeError(f"{name} runs in the API process, not behind this Lambda")
                return functions.invoke(name, payload), False
            except Exception as error:  # surfaces to Step Functions as a Lambda function error
                return {"errorType": type(error).__name__, "errorMessage": str(error)}, True

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            result, failed = run(function_name, json.loads(body) if body else {})
            if failed:
                response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(result).encode()

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]

        # Step Functions' lambda:invoke tasks call the handler directly rather than through
        # moto's Lambda API over HTTP: that hop (a boto3 call, werkzeug, Flask) cost about 9 ms
        # per turn on this machine, a fifth of the local path to the first token.
        def invoke_from_state_machine(
            parameters: dict[str, Any], region: str, state_credentials: Any
        ) -> dict[str, Any]:
            result, failed = run(str(parameters["FunctionName"]), json.loads(parameters.get("Payload") or b"{}"))
            response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}
            if failed:
                response["FunctionError"] = "Unhandled"
            return response

        lambda_eval_utils._invoke_lambda_function = invoke_from_state_machine


def _cache_asl_parsing() -> None:
    """Parse each state machine definition once, not once per execution.

    moto parses ASL with a pure-Python ANTLR parser (about 25 ms of CPU per execution for
    run.asl.json, holding the GIL the whole process shares). The parsed program keeps no
    execution state (that lives in the interpreter's Environment), so one parse serves all.
    """
    import functools

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    if not hasattr(AmazonStateLanguageParser.parse, "cache_info"):
        AmazonStateLanguageParser.parse = staticmethod(functools.lru_cache(maxsize=32)(AmazonStateLanguageParser.parse))  # type: ignore[method-assign]


def _share_service_clients() -> None:
    """One boto3 client per (region, service) for the state machines' service integrations.

    moto's ``boto_client_for`` builds a new client (10+ ms of CPU) for every task: every
    ``lambda:invoke`` and every ``aws-sdk:dynamodb`` call. It is imported by name into several
    modules, so each module's reference is replaced (modules imported later get the new one).

    A service-specific endpoint variable (``AWS_ENDPOINT_URL_DYNAMODB``...) is honoured with the
    environment's credentials, as the app's boto3 does: when the app's tables live in DynamoDB
    Local, the state machine's ``updateItem`` must write there too. Other services keep moto's
    choices (its own endpoint, dummy credentials).
    """
    import boto3
    from botocore.config import Config
    from botocore.utils import CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES, SERVICE_NAME_ALIASES
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module

    original = boto_client_module.boto_client_for
    if getattr(original, "shared_clients", False):
        return
    session = boto3.session.Session()  # boto3's default session is not safe to share across threads
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()
    config = Config(
        parameter_validation=False,
        retries={"max_attempts": 0, "total_max_attempts": 1},
        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        max_pool_connections=64,  # a lambda:invoke holds its connection for a whole agent turn
    )

    def create(region: str, service: str) -> Any:
        service_id = CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES.get(
            SERVICE_NAME_ALIASES.get(service, service), SERVICE_NAME_ALIASES.get(service, service)
        )
        endpoint = os.environ.get(f"AWS_ENDPOINT_URL_{service_id.replace('-', '_').upper()}")
        kwargs: dict[str, Any] = {"endpoint_url": endpoint}
        if not endpoint:
            kwargs = {"aws_access_key_id": "ak", "aws_secret_access_key": "sk"}
            if not botocore_stubber.enabled:
                kwargs["endpoint_url"] = f"http://localhost:{moto_server_port()}"
        return session.client(service, region_name=region, config=config, **kwargs)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = clients.get((region, service))
        if client is None:
            with lock:
                client = clients.get((region, service))
                if client is None:
                    client = clients[(region, service)] = create(region, service)
        return client

    boto_client_for.shared_clients = True  # type: ignore[attr-defined]
    boto_client_module.boto_client_for = boto_client_for  # type: ignore[assignment]
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


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


def _faults_app(functions: Functions) -> WSGIApp:
    """``POST /_local/faults`` on moto's port: the gateway forwards faults of functions run here."""

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            status, body = functions.inject_fault(request)
        except (ValueError, TypeError, AttributeError) as error:
            status, body = api_error(400, f"bad fault request: {error}")
        reason = "OK" if status == 200 else "Bad Request"
        start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return application


def _exit_with_parent() -> None:
    """Exit as soon as stdin (a pipe from the parent) closes: the parent is gone, or stopping us."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except (OSError, ValueError):
            pass
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--functions", default="", help="comma-separated: the functions whose handlers run here")
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    _exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    template = cfn.load_template()
    specs = cfn.functions(template)
    hosted = {name: specs[name] for name in filter(None, args.functions.split(","))}
    functions = Functions(hosted)
    aws = EmulatedAWS(args.port)
    aws.start(routes={FAULTS_PATH: _faults_app(functions)})
    resolver = aws.create_resources(template)
    aws.dispatch_lambda_to(functions)
    apply_function_environment(hosted, resolver)
    functions.load_all()
    with os.fdopen(args.ready_fd, "w") as ready:
        ready.write("ready\n")
    threading.Event().wait()  # until stdin closes (see _exit_with_parent) or a signal ends us


# ---------------------------------------------------------------- the handle, in the API process


class AWSProcess:
    """The emulated AWS in a child process, tied to this process's lifetime.

    The child inherits this process's environment at :meth:`start` and its stdout/stderr, so
    its logs go where ours go.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._ready: io.TextIOWrapper | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, functions: Iterable[str]) -> None:
        """Start the child, which runs the handlers of ``functions``; returns without waiting."""
        read_fd, write_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.harness.aws_process",
                    f"--port={self.port}",
                    f"--functions={','.join(functions)}",
                    f"--ready-fd={write_fd}",
                ],
                cwd=cfn.ROOT,
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        self._ready = os.fdopen(read_fd)

    def wait_ready(self) -> None:
        """Block until the child has created the resources and loaded its functions."""
        assert self.process is not None and self._ready is not None, "start() first"
        with self._ready:
            line = self._ready.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the emulated AWS exited with {self.process.wait()} before it was ready")

    def inject_fault(self, body: bytes) -> tuple[int, bytes]:
        """Forward a ``/_local/faults`` request to the child, which runs the function."""
        request = urllib.request.Request(
            f"{self.endpoint_url}{FAULTS_PATH}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self) -> None:
        """Close the child's stdin (it exits on EOF); kill it if it does not."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


if __name__ == "__main__":
    main()
