"""The sandbox worker of one emulated AgentCore Code Interpreter session, and its settings.

A worker is a long-lived Python process (:mod:`.code_worker`) in its own process group, with a
scrubbed environment (PATH, HOME, LANG, MPLBACKEND, MPLCONFIGDIR, TMPDIR, PYTHONDONTWRITEBYTECODE)
and resource limits, spoken to over two pipes of line JSON. No Docker and no root: the sandbox
is a process boundary, not a security boundary. Settings come from the environment when a
session starts (tests change them with monkeypatch):

- ``LOCAL_CODE_INTERPRETER_PYTHON``: the sandbox's interpreter; default ``.venv-sandbox/bin/python``
  of the repository if it exists, else this interpreter.
- ``LOCAL_CODE_INTERPRETER_ROOT``: where session directories go (default: the temp directory).
- ``LOCAL_CODE_CPU_SECONDS`` (600, CPU time of the worker over the session's whole life),
  ``LOCAL_CODE_MEMORY_MB`` (2048, address space; not enforced on macOS), ``LOCAL_CODE_FILE_MB``
  (100, largest file written), and 256 open files: rlimits, which the worker sets on itself
  before it reads a request (a ``preexec_fn`` would run Python between fork and exec in moto's
  threaded server, which the subprocess docs call unsafe). A worker past them dies, which ends
  its session.
- ``LOCAL_CODE_MAX_EXECUTION_SECONDS`` (300): wall clock of one invocation; past it the worker's
  process group is killed and the session ends.
- ``LOCAL_CODE_IDLE_SECONDS`` (900): a session unused that long ends (local only, to free memory;
  AgentCore itself only ends a session at its ``sessionTimeoutSeconds`` lifetime).
- ``LOCAL_CODE_SESSIONS_MAX`` (50): live sessions allowed; one more is ServiceQuotaExceeded.

Workers die with the emulated AWS: :func:`kill_all` runs at exit (and from the local stack's
``os._exit`` path through :func:`local.emulator.shutdown`); a worker whose parent is killed
outright removes its directory and kills its own group.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKER = str(Path(__file__).with_name("code_worker.py"))
SANDBOX_PYTHON = Path(__file__).resolve().parents[2] / ".venv-sandbox" / "bin" / "python"
KILLED_EXIT_CODE = 137  # 128 + SIGKILL, as a container runtime reports a killed sandbox


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    python: str
    root: str | None
    cpu_seconds: int
    memory_mb: int
    file_mb: int
    max_execution_seconds: float
    idle_seconds: float
    max_sessions: int

    @classmethod
    def from_environ(cls) -> Settings:
        default_python = str(SANDBOX_PYTHON) if SANDBOX_PYTHON.exists() else sys.executable
        return cls(
            python=os.environ.get("LOCAL_CODE_INTERPRETER_PYTHON") or default_python,
            root=os.environ.get("LOCAL_CODE_INTERPRETER_ROOT") or None,
            cpu_seconds=int(_env_number("LOCAL_CODE_CPU_SECONDS", 600)),
            memory_mb=int(_env_number("LOCAL_CODE_MEMORY_MB", 2048)),
            file_mb=int(_env_number("LOCAL_CODE_FILE_MB", 100)),
            max_execution_seconds=_env_number("LOCAL_CODE_MAX_EXECUTION_SECONDS", 300),
            idle_seconds=_env_number("LOCAL_CODE_IDLE_SECONDS", 900),
            max_sessions=int(_env_number("LOCAL_CODE_SESSIONS_MAX", 50)),
        )


class WorkerGone(Exception):
    """The worker did not answer: it died, or it was killed for overrunning (``timed_out``)."""

    def __init__(self, message: str, exit_code: int, timed_out: bool = False) -> None:
        super().__init__(message)
        self.exit_code, self.timed_out = exit_code, timed_out


_live: set[Worker] = set()  # every worker of this process, killed when it exits
_live_lock = threading.Lock()


class Worker:
    """The sandbox process of one session, spoken to over two pipes of line JSON."""

    def __init__(self, settings: Settings, directory: str) -> None:
        self.directory = directory
        home = Path(directory)
        (home / ".tmp").mkdir()
        environment = {
            "PATH": os.pathsep.join([str(Path(settings.python).parent), os.environ.get("PATH", os.defpath)]),
            "HOME": directory,
            "LANG": os.environ.get("LANG") or "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            "TMPDIR": str(home / ".tmp"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        request_read, self._requests = os.pipe()
        self._replies, reply_write = os.pipe()
        limits = (settings.cpu_seconds, settings.memory_mb, settings.file_mb)
        try:
            self.process = subprocess.Popen(
                [settings.python, "-I", "-B", WORKER, str(request_read), str(reply_write), directory]
                + [str(limit) for limit in limits],
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(request_read, reply_write),
                start_new_session=True,
            )
        except BaseException:
            for fd in (self._requests, self._replies):
                os.close(fd)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._buffer = b""
        self._state = threading.Lock()
        self._calling = self._killed = self._closed = False
        with _live_lock:
            _live.add(self)
        try:
            self.call(None, timeout=60)  # its "ready" line: the interpreter started and set its limits
        except BaseException:
            self.kill()
            raise

    def call(self, request: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        """Send a request (None: only read) and wait for the reply line, at most ``timeout``
        seconds; past it the process group is killed (WorkerGone with timed_out)."""
        with self._state:
            if self._killed:
                raise WorkerGone("The sandbox was stopped: the session ended.", KILLED_EXIT_CODE)
            self._calling = True
        try:
            return self._call(request, timeout)
        finally:
            with self._state:
                self._calling = False
            if self._killed:
                self._close_pipes()  # kill() left them open while this call was reading

    def _call(self, request: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        if request is not None:
            data = json.dumps(request).encode() + b"\n"
            try:
                while data:
                    data = data[os.write(self._requests, data) :]
            except OSError:
                raise self._gone() from None
        poll = select.poll()  # not select(): the server's fds may be numbered past FD_SETSIZE
        poll.register(self._replies, select.POLLIN)
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerGone(
                    f"Execution exceeded the {timeout:g} second limit: the sandbox was stopped and the session ended.",
                    KILLED_EXIT_CODE,
                    timed_out=True,
                )
            if poll.poll(remaining * 1000):
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise self._gone()
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def _gone(self) -> WorkerGone:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
        exit_code = 128 - code if code < 0 else code
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return WorkerGone(f"The sandbox process ended ({how}): the session ended.", exit_code)

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and whatever it started), once, and
        remove the session directory. A call in progress then reads EOF and reports it."""
        with self._state:
            if self._killed:
                return
            self._killed = True
            calling = self._calling
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        with _live_lock:
            _live.discard(self)
        if not calling:
            self._close_pipes()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _close_pipes(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
        for fd in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)


def kill_all() -> None:
    """Kill every worker of this process and remove its directory: they are in process groups
    of their own, so nothing else would stop them when the emulated AWS exits."""
    with _live_lock:
        workers = list(_live)
    for worker in workers:
        worker.kill()


atexit.register(kill_all)
