"""The Lambda runtime of the local stack: the template's functions loaded as Lambda loads them.

Both processes of the local stack run functions (the gateway's in the API process, Step
Functions' in the emulated AWS), so what they share lives here: :class:`Functions`, the context
object, and how a function's template environment becomes the process's environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import template as cfn

# Variables that configure the Lambda Web Adapter itself, not the app: never applied locally.
ADAPTER_ONLY_VARIABLES = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "PORT", "AWS_LWA_PORT"}
FAULTS_PATH = "/_local/faults"  # not part of the API: lets tests crash a function on purpose


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_error(status: int, message: str, code: str | None = None) -> tuple[int, bytes]:
    """An error in the OpenAI shape, as the API functions answer."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return status, json.dumps(body).encode()


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
