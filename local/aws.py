"""The emulated AWS of the local stack, in a process of its own: what the AWS services are.

``python -m local.aws --port P --functions A,B --ready-fd F`` (started by :class:`AWSProcess`,
not by hand) runs:

- moto in server mode on port P: DynamoDB, Step Functions executing the real ASL, Lambda's
  control plane, IAM, S3 and S3 Vectors, with the fixes and additions of :mod:`local.emulator`,
  and beside it the AgentCore Code Interpreter data plane (:mod:`local.emulator.agentcore`);
- the template's resources, created in it: tables, role, functions, state machines, S3 buckets
  (with their encryption, public access block and policy), S3 Vectors buckets and indexes;
- the Lambda runtime of the functions named by ``--functions`` (those Step Functions invokes):
  moto cannot run code without Docker, so its Lambda invoke calls the real handler here.

It writes a line to fd F once all that is ready, and exits when its stdin reaches EOF, which
happens when the parent exits however it exits (even SIGKILL). It ignores SIGINT: Ctrl-C reaches
the whole process group, and the parent decides when the emulated AWS goes.

Being a process of its own, it has its own GIL: moto's state machine threads and the agent's
model turns do not compete with the API process's request handling and stream polling.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from typing import Any

from . import cpu_meter, emulator, meter, schedules
from . import template as cfn
from .emulator import stepfunctions
from .lambda_runtime import (
    FAULTS_PATH,
    Functions,
    InvocationFailed,
    api_error,
    apply_function_environment,
    free_port,
)

ROLE_ARN = f"arn:aws:iam::{cfn.ACCOUNT}:role/local-stack"
WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


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
        from .emulator.server import SerializedMotoServer  # imports moto: after MOTO_PORT is set

        emulator.install()
        SerializedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False, routes=routes).start()
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/config",
            data=json.dumps(
                {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            ).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=cfn.REGION)

    def create_resources(self, template: dict[str, Any]) -> cfn.Resolver:
        """Create the template's resources in moto, named as :func:`local.template.planned_resolver` plans."""
        resolver = cfn.planned_resolver(template)
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
        self._create_buckets(template, resolver)
        sfn = self.client("stepfunctions")
        for name in cfn.resources(template, "AWS::Serverless::StateMachine"):
            definition = stepfunctions.shorten_waits(cfn.state_machine_definition(name, resolver, template))
            kind = template["Resources"][name]["Properties"].get("Type", "STANDARD")
            created[name] = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE_ARN, type=kind)[
                "stateMachineArn"
            ]
        if created != {name: resolver.arns[name] for name in created}:
            raise RuntimeError(f"moto named resources unlike planned_resolver: {created} vs {resolver.arns}")
        return resolver

    def _create_buckets(self, template: dict[str, Any], resolver: cfn.Resolver) -> None:
        """S3 buckets (encrypted, public access blocked, with their policy), S3 Vectors buckets and
        their indexes, from the template's properties. moto keeps lifecycle rules but never runs
        them, so they are left out."""
        s3 = self.client("s3")
        for name, resource in cfn.resources(template, "AWS::S3::Bucket").items():
            bucket, props = resolver.ref(name), resource.get("Properties", {})
            s3.create_bucket(Bucket=bucket)
            if "BucketEncryption" in props:
                rules = [  # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServer...
                    {("Apply" + k if k == "ServerSideEncryptionByDefault" else k): v for k, v in rule.items()}
                    for rule in resolver.resolve(props["BucketEncryption"]["ServerSideEncryptionConfiguration"])
                ]
                s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=bucket,
                    PublicAccessBlockConfiguration=resolver.resolve(props["PublicAccessBlockConfiguration"]),
                )
        for resource in cfn.resources(template, "AWS::S3::BucketPolicy").values():
            props = resolver.resolve(resource["Properties"])
            # moto enforces policies, and the local endpoints are plain HTTP: a statement that
            # denies requests without TLS would deny every local request, so it is left out.
            statements = [s for s in props["PolicyDocument"]["Statement"] if "aws:SecureTransport" not in json.dumps(s)]
            if statements:
                document = {**props["PolicyDocument"], "Statement": statements}
                s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
        vectors = self.client("s3vectors")
        for name in cfn.resources(template, "AWS::S3Vectors::VectorBucket"):
            vectors.create_vector_bucket(vectorBucketName=cfn.bucket_name(name))
        for resource in cfn.resources(template, "AWS::S3Vectors::Index").values():
            props = resolver.resolve(resource["Properties"])
            metadata = props.get("MetadataConfiguration") or {}
            vectors.create_index(
                vectorBucketArn=props["VectorBucketArn"],
                indexName=props["IndexName"],
                dataType=props["DataType"],
                dimension=int(props["Dimension"]),
                distanceMetric=props["DistanceMetric"],
                metadataConfiguration={"nonFilterableMetadataKeys": metadata.get("NonFilterableMetadataKeys", [])},
            )

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
                error_type = error.error_type if isinstance(error, InvocationFailed) else type(error).__name__
                return {"errorType": error_type, "errorMessage": str(error)}, True

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


def _cpu_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``GET /_local/cpu`` on moto's port: this process's CPU meters, for the gateway's."""
    body = json.dumps(cpu_meter.snapshot()).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _exit_with_parent() -> None:
    """Exit as soon as stdin (a pipe from the parent) closes: the parent is gone, or stopping us."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except (OSError, ValueError):
            pass
        emulator.shutdown()  # os._exit skips atexit: the code interpreter's workers die here
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
    if meter.ENABLED:  # before moto's and the functions' clients exist
        meter.install()

    template = cfn.load_template()
    specs = cfn.functions(template)
    hosted = {name: specs[name] for name in filter(None, args.functions.split(","))}
    if cpu_meter.ENABLED:
        cpu_meter.install()
    functions = Functions(hosted)
    aws = EmulatedAWS(args.port)
    aws.start(routes={FAULTS_PATH: _faults_app(functions), meter.PATH: meter.http_app(), cpu_meter.PATH: _cpu_app})
    resolver = aws.create_resources(template)
    aws.dispatch_lambda_to(functions)
    apply_function_environment(hosted, resolver)
    functions.load_all()
    schedules.start(functions)
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
                    "local.aws",
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

    def meter(self, method: str) -> dict[str, Any]:
        """The child's counts (``make cost``, see :mod:`local.meter`); ``DELETE`` resets them."""
        request = urllib.request.Request(f"{self.endpoint_url}{meter.PATH}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    def cpu(self) -> dict[str, Any]:
        """The child's CPU meters (see :mod:`local.cpu_meter`)."""
        with urllib.request.urlopen(f"{self.endpoint_url}{cpu_meter.PATH}", timeout=10) as response:
            return dict(json.loads(response.read()))

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
