"""The Amazon Bedrock AgentCore Code Interpreter data plane, as a WSGI app beside moto.

moto does not know ``bedrock-agentcore``. :class:`AgentCore` answers its code interpreter
operations on the moto server's port (paths under ``/code-interpreters/``) in botocore 1.44.5's
rest-json wire format, so the app's boto3 client code is the same locally and on AWS:
StartCodeInterpreterSession, GetCodeInterpreterSession, StopCodeInterpreterSession,
ListCodeInterpreterSessions and InvokeCodeInterpreter (an ``application/vnd.amazon.eventstream``
response with one ``result`` event). Sessions and their sandboxes are in
:mod:`.agentcore_sessions`, the tools in :mod:`.agentcore_tools`.

Errors are ``x-amzn-ErrorType`` plus ``{"message"}`` (ValidationException adds ``reason``) with
the status of the model's error shape. An unknown or ended session is a 404 before any stream.
Tests make the next calls of an operation fail with :meth:`AgentCore.inject_fault`.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from . import agentcore_eventstream as eventstream
from .agentcore_sessions import READY, TERMINATED, ApiError, Registry, Session, not_found
from .agentcore_tools import Result, invalid, prepare

PREFIX = "/code-interpreters/"
_PATH = re.compile(r"^/code-interpreters/([^/]+)/(sessions/(?:start|get|stop|list)|tools/invoke)$")
OPERATIONS = {
    ("PUT", "sessions/start"): "StartCodeInterpreterSession",
    ("GET", "sessions/get"): "GetCodeInterpreterSession",
    ("PUT", "sessions/stop"): "StopCodeInterpreterSession",
    ("POST", "sessions/list"): "ListCodeInterpreterSessions",
    ("POST", "tools/invoke"): "InvokeCodeInterpreter",
}
DEFAULT_TIMEOUT, MAX_TIMEOUT = 900, 28800
MAX_LIST_RESULTS = 100
FAULT_ERRORS = tuple(code for code in ApiError.STATUS if code != "UnknownOperationException")
StartResponse = Callable[..., Any]


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _respond(
    start_response: StartResponse, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers],
    )
    return [data]


def _bounded_int(body: dict[str, Any], key: str, low: int, high: int, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"{key} must be an integer from {low} to {high}")
    return value


def _optional_string(body: dict[str, Any], key: str, low: int, high: int) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not low <= len(value) <= high):
        raise invalid(f"{key} must be a string of {low} to {high} characters")
    return value


class AgentCore:
    """The WSGI app of one emulated AWS: its sessions, and the faults injected into it."""

    def __init__(self) -> None:
        self.registry = Registry()
        self._faults: dict[str, tuple[str, int]] = {}  # operation -> (error code, calls left)
        self._lock = threading.Lock()

    def close(self) -> None:
        """End every session: its worker is killed and its directory removed."""
        self.registry.close()

    def inject_fault(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``{"operation": name, "error": code, "times": n}``: the next n calls of the operation
        answer that error (default ThrottlingException) instead of running."""
        operation, error = request.get("operation"), request.get("error", "ThrottlingException")
        times = request.get("times", 1)
        if not isinstance(operation, str) or operation not in OPERATIONS.values():
            return 400, {"error": {"message": f"unknown operation {operation!r}", "type": "invalid_request_error"}}
        if error not in FAULT_ERRORS or isinstance(times, bool) or not isinstance(times, int) or times < 0:
            message = f"error must be one of {', '.join(FAULT_ERRORS)} and times an integer >= 0"
            return 400, {"error": {"message": message, "type": "invalid_request_error"}}
        with self._lock:
            self._faults[operation] = (error, times)
        return 200, {"operation": operation, "error": error, "times": times}

    def _take_fault(self, operation: str) -> None:
        with self._lock:
            error, left = self._faults.get(operation, ("", 0))
            if left <= 0:
                return
            self._faults[operation] = (error, left - 1)
        raise ApiError(error, f"Injected fault: {error} for {operation}")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = [("x-amzn-RequestId", str(uuid.uuid4()))]
        try:
            match = _PATH.match(environ.get("PATH_INFO", ""))
            operation = match and OPERATIONS.get((environ.get("REQUEST_METHOD", ""), match.group(2)))
            if not match or not operation:
                raise ApiError("UnknownOperationException", "The requested operation is not recognized")
            self._take_fault(operation)
            identifier = match.group(1)
            query = {key: values[-1] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
            body = self._body(environ)
            if operation == "InvokeCodeInterpreter":
                session_id = environ.get("HTTP_X_AMZN_CODE_INTERPRETER_SESSION_ID", "")
                return self._invoke(identifier, session_id, body, start_response, headers)
            answer = getattr(self, f"_{operation}")(identifier, query, body)
            return _respond(start_response, 200, answer, headers)
        except ApiError as error:
            return _respond(start_response, error.status, error.body(), [*headers, ("x-amzn-ErrorType", error.code)])

    @staticmethod
    def _body(environ: dict[str, Any]) -> dict[str, Any]:
        length = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length.isdigit():
            raw = stream.read(int(length))
        else:  # chunked: werkzeug dechunks and terminates the input
            raw = stream.read() if environ.get("wsgi.input_terminated") else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise ApiError("ValidationException", f"Could not parse the request body: {error}", "CannotParse") from None
        if not isinstance(body, dict):
            raise ApiError("ValidationException", "The request body must be a JSON object", "CannotParse")
        return body

    def _session(self, identifier: str, session_id: str) -> Session:
        if not session_id:
            raise invalid("sessionId is required")
        session = self.registry.find(identifier, session_id)
        if session is None:
            raise not_found(session_id)
        return session

    def _StartCodeInterpreterSession(  # noqa: N802 - named as the operation
        self, identifier: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        name = _optional_string(body, "name", 1, 100)
        timeout = _bounded_int(body, "sessionTimeoutSeconds", 1, MAX_TIMEOUT, DEFAULT_TIMEOUT)
        token = _optional_string(body, "clientToken", 1, 256)
        session = self.registry.start(identifier, name or "", timeout, token)
        return {
            "codeInterpreterIdentifier": identifier,
            "sessionId": session.session_id,
            "createdAt": _timestamp(session.created_at),
        }

    def _GetCodeInterpreterSession(  # noqa: N802
        self, identifier: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        session = self._session(identifier, query.get("sessionId", ""))
        answer = {
            "codeInterpreterIdentifier": identifier,
            "sessionId": session.session_id,
            "name": session.name,
            "createdAt": _timestamp(session.created_at),
            "sessionTimeoutSeconds": session.timeout_seconds,
            "status": session.status,
        }
        return {key: value for key, value in answer.items() if value != ""}

    def _StopCodeInterpreterSession(  # noqa: N802
        self, identifier: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        session = self._session(identifier, query.get("sessionId", ""))
        session.terminate()  # an ended session stops again without error (idempotent)
        return {
            "codeInterpreterIdentifier": identifier,
            "sessionId": session.session_id,
            "lastUpdatedAt": _timestamp(session.last_updated_at),
        }

    def _ListCodeInterpreterSessions(  # noqa: N802
        self, identifier: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        limit = _bounded_int(body, "maxResults", 1, MAX_LIST_RESULTS, MAX_LIST_RESULTS)
        status = body.get("status")
        if status not in (None, READY, TERMINATED):
            raise invalid(f"status must be {READY} or {TERMINATED}")
        token = _optional_string(body, "nextToken", 1, 2048)
        if token is not None and not token.isdigit():
            raise invalid("nextToken is not valid")
        start = int(token or 0)
        sessions = [s for s in self.registry.sessions(identifier) if status is None or s.status == status]
        page = sessions[start : start + limit]
        answer: dict[str, Any] = {"items": [self._summary(s) for s in page]}
        if start + limit < len(sessions):
            answer["nextToken"] = str(start + limit)
        return answer

    @staticmethod
    def _summary(session: Session) -> dict[str, Any]:
        summary = {
            "codeInterpreterIdentifier": session.identifier,
            "sessionId": session.session_id,
            "name": session.name,
            "status": session.status,
            "createdAt": _timestamp(session.created_at),
            "lastUpdatedAt": _timestamp(session.last_updated_at),
        }
        return {key: value for key, value in summary.items() if value != ""}

    def _invoke(
        self,
        identifier: str,
        session_id: str,
        body: dict[str, Any],
        start_response: StartResponse,
        headers: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """Request errors are HTTP errors; then the 200 headers go out at once, and the one
        ``result`` event when the tool is done (as AWS streams it)."""
        session = self._session(identifier, session_id)
        if session.status != READY:
            raise not_found(session_id)
        run = prepare(session, body.get("name"), body.get("arguments"))
        start_response(
            "200 OK",
            [
                ("Content-Type", eventstream.CONTENT_TYPE),
                ("x-amzn-code-interpreter-session-id", session.session_id),
                *headers,
            ],
        )
        return self._stream(run)

    @staticmethod
    def _stream(run: Callable[[], Result]) -> Iterator[bytes]:
        yield b""  # werkzeug sends the status and headers now, before the tool runs
        try:
            result = run()
        except ApiError as error:  # the session ended between the check and the run
            yield eventstream.exception(error.code, error.message)
            return
        except Exception as error:  # a bug here: reported as AWS reports its own
            yield eventstream.exception("InternalServerException", f"{type(error).__name__}: {error}")
            return
        yield eventstream.event("result", result)
