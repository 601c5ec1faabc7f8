"""moto in server mode, made as atomic as DynamoDB: shared by the local stack and the tests."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from ..lambda_runtime import FAULTS_PATH
from . import dynamodb_item_size, install
from .agentcore import PREFIX as AGENTCORE_PREFIX
from .agentcore import AgentCore


def _serialized(app: Any) -> Any:
    """Wrap moto's WSGI app so it handles one DynamoDB request at a time.

    moto's backends are plain Python objects without locks: under concurrent requests its
    conditional writes are not atomic (an 8-thread race on one conditional UpdateItem had two
    winners about 1 time in 100, on one TransactWriteItems about 1 in 12, and moto sometimes
    failed with "dictionary changed size during iteration"). DynamoDB makes every single
    request atomic, so serializing requests gives moto the guarantee the code relies on while
    still exposing races between separate requests (read-modify-write).
    """
    lock = threading.Lock()

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            # Only DynamoDB is serialized: a Step Functions or Lambda request that calls back into
            # moto while it is being handled would otherwise wait for itself.
            return app(environ, start_response)
        with lock:
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    return application


def _with_routes(app: Any, routes: dict[str, Any], agentcore: AgentCore) -> Any:
    """Serve AgentCore's code interpreter paths (moto does not know the service) and a few extra
    paths (the local stack's own, such as fault injection) beside moto."""
    faults = _faults_app(agentcore, routes.get(FAULTS_PATH))

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(AGENTCORE_PREFIX):
            return agentcore(environ, start_response)
        if path == FAULTS_PATH:
            return faults(environ, start_response)
        route = routes.get(path)
        return (route or app)(environ, start_response)

    return application


def _faults_app(agentcore: AgentCore, functions_faults: Any) -> Any:
    """``POST /_local/faults``: ``{"operation": ...}`` injects an AgentCore error (see
    :meth:`AgentCore.inject_fault`), ``{"dynamodb_oversize": marker, "times": n}`` an oversize
    DynamoDB write (:mod:`.dynamodb_item_size`); any other body goes to the route given for the
    path (the local stack's function faults), if any."""

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        length = environ.get("CONTENT_LENGTH") or "0"
        raw = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = None
        if isinstance(request, dict) and "operation" in request:
            status, body = agentcore.inject_fault(request)
        elif isinstance(request, dict) and isinstance(request.get("dynamodb_oversize"), str):
            dynamodb_item_size.inject_oversize(request["dynamodb_oversize"], int(request.get("times", 1)))
            status, body = 200, request
        elif functions_faults is not None:
            return functions_faults({**environ, "wsgi.input": io.BytesIO(raw)}, start_response)
        else:
            message = "expected {operation, error, times}"
            status, body = 400, {"error": {"message": message, "type": "invalid_request_error"}}
        data = json.dumps(body).encode()
        reason = "OK" if status == 200 else "Bad Request"
        start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return application


class SerializedMotoServer(ThreadedMotoServer):
    """moto in a thread (as ThreadedMotoServer), answering one DynamoDB request at a time, with
    the AgentCore Code Interpreter emulator (:attr:`agentcore`) on the same port.

    ``routes`` maps extra paths to WSGI apps served on the same port, ahead of moto.
    """

    def __init__(
        self, ip_address: str = "0.0.0.0", port: int = 5000, verbose: bool = True, routes: dict[str, Any] | None = None
    ) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=verbose)
        self._routes = dict(routes or {})
        self.agentcore = AgentCore()

    def _server_entry(self) -> None:
        app = _with_routes(_serialized(DomainDispatcherApplication(create_backend_app)), self._routes, self.agentcore)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving, and end every code interpreter session (their workers are killed)."""
        super().stop()
        self.agentcore.close()


@contextmanager
def emulated_moto() -> Iterator[str]:
    """moto with every fix of :mod:`local.emulator`, on a free port of 127.0.0.1 in a thread of
    this process, while the block runs (tests and benchmarks); yields its endpoint URL."""
    install()
    server = SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
