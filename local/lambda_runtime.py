"""The Lambda runtime of the local stack: the template's functions loaded as Lambda loads them.

Both processes of the local stack run functions (the gateway's in the API process, Step
Functions' in the emulated AWS), so what they share lives here: :class:`Functions`, the context
object, and how a function's template environment becomes the process's environment.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from . import cpu_meter, meter
from . import template as cfn

# What Lambda's Python runtime has on its path beside the function's code and layers: here, the
# SnapStart hooks module (snapshot_restore_py).
RUNTIME_PATH = Path(__file__).resolve().parent / "runtime"
# Variables that configure the Lambda Web Adapter itself, not the app: never applied locally.
ADAPTER_ONLY_VARIABLES = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "PORT", "AWS_LWA_PORT"}
FAULTS_PATH = "/_local/faults"  # not part of the API: lets tests crash a function on purpose
# What Lambda reports (the Invoke payload's errorType, which Step Functions' lambda:invoke task
# takes as the error name) when it stops an invocation: its process died, or it timed out.
KILL_ERRORS = {
    "Runtime.ExitError": "Runtime exited with error: signal: killed",
    "Sandbox.Timedout": "Task timed out after {seconds:.2f} seconds",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_error(status: int, message: str, code: str | None = None) -> tuple[int, bytes]:
    """An error in the OpenAI shape, as the API functions answer."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode()


@dataclass
class Fault:
    """The next ``times`` invocations of a function fail. Without ``after_ms`` the handler raises
    before it starts (a bug in the function). With it, the invocation runs in a process of its
    own that is killed ``after_ms`` after its handler started (or sooner, when a test asks: see
    :meth:`Functions.kill`), as Lambda kills an environment that crashed or timed out: nothing
    more comes from it, and Step Functions sees ``error``."""

    times: int
    after_ms: int | None = None
    error: str = "Runtime.ExitError"


class InvocationFailed(Exception):
    """An invocation that ran in a process of its own failed (Lambda stopped it, or its handler
    raised); ``error_type`` is the errorType its Invoke payload carries."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


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
        return cfn.function_arn(self.function_name)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


class Functions:
    """Some of the template's functions, loaded from their folders exactly as Lambda would."""

    def __init__(self, specs: dict[str, cfn.FunctionSpec]) -> None:
        self.specs = specs
        layer = str(cfn.ROOT / "layers" / "core" / "python")  # the layer, on the path as /opt/python is
        for path in (layer, str(RUNTIME_PATH)):
            if path not in sys.path:
                sys.path.insert(0, path)
        self._modules: dict[str, ModuleType] = {}
        # SnapStart functions whose snapshot was taken and whose next invocation runs in a restored
        # environment: the after-restore hooks run first (see _restore).
        self._awaiting_restore: set[str] = set()
        self._lock = threading.RLock()
        self.faults: dict[str, Fault] = {}  # function name -> invocations that fail (tests)
        self.doomed: dict[str, set[subprocess.Popen[bytes]]] = {}  # processes of faulted invocations

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
                if spec.snap_start:  # Lambda snapshots the environment once its init is done
                    run_before_snapshot()
                    self._awaiting_restore.add(name)
            return self._modules[name]

    def handler(self, name: str) -> Callable[[Any, Any], Any]:
        attribute = self.specs[name].handler.rsplit(".", 1)[-1]
        handler = getattr(self.module(name), attribute)
        self._restore(name)
        return handler  # type: ignore[no-any-return]

    def asgi_app(self, name: str) -> Any:
        """The FastAPI app that the function serves (behind mangum or the Web Adapter)."""
        app = self.module(name).app
        self._restore(name)
        return app

    def restore(self, name: str) -> tuple[int, bytes]:
        """The function's next invocation runs in an environment freshly restored from its
        snapshot, as when Lambda scales a SnapStart function out (tests: ``{"function": name,
        "restore": true}`` on ``/_local/faults``)."""
        if not self.specs[name].snap_start:
            return api_error(400, f"{name} does not have SnapStart (SnapStart.ApplyOn PublishedVersions)")
        self.module(name)
        with self._lock:
            self._awaiting_restore.add(name)
        return 200, json.dumps({"function": name, "restore": True}).encode()

    def _restore(self, name: str) -> None:
        """Before a restored environment's first invocation: the after-restore hooks, in the order
        they were registered. One that raises fails the invocation (``Runtime.AfterRestoreError``,
        as Lambda reports it) and the next invocation restores again."""
        with self._lock:
            if name not in self._awaiting_restore:
                return
            try:
                run_after_restore()
            except Exception as error:
                raise InvocationFailed("Runtime.AfterRestoreError", f"{type(error).__name__}: {error}") from error
            self._awaiting_restore.discard(name)

    def invoke(self, name: str, payload: Any) -> Any:
        if meter.ENABLED:
            with meter.METER.invocation(name):
                return self._invoke(name, payload)
        return self._invoke(name, payload)

    def _invoke(self, name: str, payload: Any) -> Any:
        with self._lock:
            fault = self.faults.get(name)
            if fault is not None and fault.times > 0:
                fault.times -= 1
            else:
                fault = None
        if fault is not None and fault.after_ms is None:
            raise RuntimeError(f"injected fault in {name}")
        if fault is not None:
            return self._invoke_doomed(name, payload, fault)
        handler = self.handler(name)
        with cpu_meter.invocation(name):
            return handler(payload, LambdaContext(function_name=name))

    def inject_fault(self, request: dict[str, Any]) -> tuple[int, bytes]:
        """``{"function": name, "times": n, "after_ms": ms, "error": name}``: the next n
        invocations of name fail (see :class:`Fault`; ``after_ms`` and ``error`` are optional).
        ``{"function": name, "kill": true}``: kill its faulted invocations running now."""
        name = request.get("function")
        if name not in self.specs:
            return api_error(400, f"unknown function {name!r}")
        if request.get("restore"):
            return self.restore(str(name))
        if request.get("kill"):
            return 200, json.dumps({"function": name, "killed": self.kill(str(name))}).encode()
        after_ms = request.get("after_ms")
        error = request.get("error", "Runtime.ExitError")
        if error not in KILL_ERRORS:
            return api_error(400, f"error must be one of {sorted(KILL_ERRORS)}, not {error!r}")
        fault = Fault(int(request.get("times", 1)), None if after_ms is None else int(after_ms), error)
        with self._lock:
            self.faults[name] = fault
        return 200, json.dumps({"function": name, **fault.__dict__}).encode()

    def kill(self, name: str) -> int:
        """SIGKILL the processes of the function's faulted invocations; returns how many."""
        with self._lock:
            running = [p for p in self.doomed.get(name, set()) if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGKILL)
        return len(running)

    def _invoke_doomed(self, name: str, payload: Any, fault: Fault) -> Any:
        """Run one invocation in a process of its own (``python -m local.lambda_runtime``, with
        this process's environment) and SIGKILL it ``fault.after_ms`` after its handler started,
        or when :meth:`kill` says, as Lambda does to a crashed or timed-out environment: its
        writes stop where they are, including those a thread of its own would still have made.
        Returns its result if it finishes first."""
        assert fault.after_ms is not None  # a fault without it raises before any invocation
        read_fd, write_fd = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "local.lambda_runtime", f"--function={name}", f"--report-fd={write_fd}"],
            cwd=cfn.ROOT,
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        with self._lock:
            self.doomed.setdefault(name, set()).add(process)
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps(payload).encode())
            process.stdin.close()
            report = _Report(read_fd)
            first = report.line(timeout=120)
            wait = fault.after_ms / 1000
            line = report.line(timeout=wait) if first == "started" else first
            if line is None:  # its time is up
                process.send_signal(signal.SIGKILL)
            if not line:
                code = process.wait()
                if code != -signal.SIGKILL:
                    raise RuntimeError(f"{name} exited with {code} without answering")
                detail = KILL_ERRORS[fault.error].format(seconds=fault.after_ms / 1000)
                raise InvocationFailed(fault.error, f"RequestId: {uuid.uuid4()} Error: {detail}")
            kind, _, data = line.partition(" ")
            process.wait()
            if kind == "result":
                return json.loads(data)
            error = json.loads(data)
            raise InvocationFailed(error["errorType"], error["errorMessage"])
        finally:
            os.close(read_fd)
            if process.poll() is None:
                process.kill()
                process.wait()
            with self._lock:
                self.doomed[name].discard(process)

    def load_all(self) -> None:
        """Import every function now, so that its first invocation is not slow."""
        for name in self.specs:
            self.module(name)


def run_before_snapshot() -> None:
    """The before-snapshot hooks, last registered first, each once (AWS's runtime pops them)."""
    import snapshot_restore_py

    hooks = snapshot_restore_py.get_before_snapshot()
    while hooks:
        func, args, kwargs = hooks.pop()
        func(*args, **kwargs)


def run_after_restore() -> None:
    """The after-restore hooks, in the order they were registered (they run at every restore)."""
    import snapshot_restore_py

    for func, args, kwargs in list(snapshot_restore_py.get_after_restore()):
        func(*args, **kwargs)


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


# ---------------------------------------------------------------- an invocation that is killed


class _Report:
    """Lines from the child's report pipe, read with a timeout."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def line(self, timeout: float | None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return ""  # the child exited
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def _child(argv: list[str] | None = None) -> None:
    """The process :meth:`Functions._invoke_doomed` runs: load the function, say so, invoke it once."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--function", required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    args = parser.parse_args(argv)
    payload = json.loads(sys.stdin.read() or "{}")
    specs = cfn.functions(cfn.load_template())
    functions = Functions({args.function: specs[args.function]})
    handler = functions.handler(args.function)
    with os.fdopen(args.report_fd, "w") as report:
        report.write("started\n")
        report.flush()
        try:
            result = handler(payload, LambdaContext(function_name=args.function))
            report.write("result " + json.dumps(result) + "\n")
        except Exception as error:
            report.write("error " + json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}) + "\n")


if __name__ == "__main__":
    _child()
