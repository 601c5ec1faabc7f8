"""The sessions of the emulated AgentCore Code Interpreter, and the errors AWS answers.

A session is a fresh directory (its HOME and working directory) and a worker process
(:mod:`.agentcore_worker`, where the ``LOCAL_CODE_*`` settings are). As in AgentCore,
``sessionTimeoutSeconds`` is an absolute lifetime: a reaper thread ends sessions past it (and,
locally only, those idle for ``LOCAL_CODE_IDLE_SECONDS``). An ended session stays TERMINATED for
Get and List; its worker is killed and its directory removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .agentcore_worker import Settings, Worker, WorkerGone

READY, TERMINATED = "READY", "TERMINATED"
KEEP_TERMINATED = 1000  # terminated sessions still answered by Get/List, oldest forgotten first


class ApiError(Exception):
    """An AWS error answer: its code (x-amzn-ErrorType) and HTTP status come from the model."""

    STATUS = {
        "ValidationException": 400,
        "AccessDeniedException": 403,
        "ResourceNotFoundException": 404,
        "ConflictException": 409,
        "ServiceQuotaExceededException": 402,
        "ThrottlingException": 429,
        "InternalServerException": 500,
        "UnknownOperationException": 404,  # no such path or method (not in the model)
    }

    def __init__(self, code: str, message: str, reason: str = "FieldValidationFailed") -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, self.STATUS[code]
        self.reason = reason  # ValidationException's required member

    def body(self) -> dict[str, Any]:
        if self.code == "ValidationException":
            return {"message": self.message, "reason": self.reason}
        return {"message": self.message}


def not_found(session_id: str) -> ApiError:
    return ApiError("ResourceNotFoundException", f"Session {session_id} not found or no longer active")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Session:
    identifier: str
    session_id: str
    name: str
    timeout_seconds: int
    settings: Settings
    worker: Worker | None = None
    status: str = READY
    created_at: datetime = field(default_factory=_now)
    last_updated_at: datetime = field(default_factory=_now)
    started: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def directory(self) -> str:
        assert self.worker is not None
        return self.worker.directory

    def terminate(self) -> None:
        """End the session now, even while it executes (that invocation then reports the end)."""
        if self.status == TERMINATED:
            return
        self.status, self.last_updated_at = TERMINATED, _now()
        if self.worker is not None:
            self.worker.kill()

    def touch(self) -> None:
        """Mark the session used now (for the idle bound); under :attr:`lock`. Ended: not found."""
        if self.status != READY or self.worker is None:
            raise not_found(self.session_id)
        self.last_used = time.monotonic()

    def due(self, now: float) -> bool:
        """Past its lifetime, or (local only) idle too long while not executing."""
        if now - self.started >= self.timeout_seconds:
            return True
        return not self.busy and now - self.last_used >= self.settings.idle_seconds

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request to the worker, one at a time per session. A worker that dies or overruns
        ends the session; the caller gets a reply that says so, as the sandbox's own result."""
        with self.lock:
            if self.status != READY or self.worker is None:
                raise not_found(self.session_id)
            self.busy, start = True, time.monotonic()
            try:
                return self.worker.call(request, self.settings.max_execution_seconds)
            except WorkerGone as gone:
                message = str(gone)
                if self.status == TERMINATED and not gone.timed_out:  # stopped or expired meanwhile
                    message = "The session was terminated during the execution."
                self.terminate()
                return {
                    "stdout": "",
                    "stderr": message,
                    "exitCode": gone.exit_code,
                    "executionTime": round(time.monotonic() - start, 6),
                }
            finally:
                self.busy, self.last_used = False, time.monotonic()


class Registry:
    """The sessions of one emulated AWS; a reaper thread ends those past their time."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._tokens: dict[str, str] = {}  # clientToken -> sessionId (idempotent StartSession)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self, identifier: str, name: str, timeout_seconds: int, client_token: str | None) -> Session:
        settings = Settings.from_environ()
        with self._lock:
            if client_token and client_token in self._tokens:
                return self._sessions[self._tokens[client_token]]
            live = sum(1 for s in self._sessions.values() if s.status == READY)
            if live >= settings.max_sessions:
                raise ApiError(
                    "ServiceQuotaExceededException",
                    f"The number of active code interpreter sessions ({settings.max_sessions}) has been reached",
                )
            session = Session(identifier, uuid.uuid4().hex[:26].upper(), name, timeout_seconds, settings)
            self._sessions[session.session_id] = session  # counted from now on, though not ready yet
            if client_token:
                self._tokens[client_token] = session.session_id
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="code-interpreter-reaper", daemon=True)
                self._reaper.start()
        try:
            if settings.root:
                os.makedirs(settings.root, exist_ok=True)
            directory = os.path.realpath(tempfile.mkdtemp(prefix="code-session-", dir=settings.root))
            try:
                session.worker = Worker(settings, directory)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            if session.status == TERMINATED:  # the registry closed while the worker started
                session.worker.kill()
        except (OSError, WorkerGone, ValueError) as error:
            with self._lock:
                self._sessions.pop(session.session_id, None)
            raise ApiError("InternalServerException", f"could not start the sandbox: {error}") from error
        session.started = session.last_used = time.monotonic()
        return session

    def find(self, identifier: str, session_id: str) -> Session | None:
        """The session (READY or TERMINATED), ended first if its time is up."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.identifier != identifier:
            return None
        if session.status == READY and session.worker is not None and session.due(time.monotonic()):
            session.terminate()
        return session

    def sessions(self, identifier: str) -> list[Session]:
        """Newest first."""
        with self._lock:
            found = [s for s in self._sessions.values() if s.identifier == identifier and s.worker is not None]
        now = time.monotonic()
        for session in found:
            if session.status == READY and session.due(now):
                session.terminate()
        return sorted(found, key=lambda s: s.created_at, reverse=True)

    def _reap(self) -> None:
        while not self._closed.wait(0.5):
            now = time.monotonic()
            with self._lock:
                candidates = [s for s in self._sessions.values() if s.status == READY and s.worker is not None]
            for session in candidates:
                if session.due(now):
                    session.terminate()
            self._forget_old()

    def _forget_old(self) -> None:
        with self._lock:
            ended = [s for s in self._sessions.values() if s.status == TERMINATED]
            for session in sorted(ended, key=lambda s: s.last_updated_at)[: max(0, len(ended) - KEEP_TERMINATED)]:
                del self._sessions[session.session_id]

    def close(self) -> None:
        """End every session (the server stops)."""
        self._closed.set()
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.terminate()
