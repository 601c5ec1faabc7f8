"""The code interpreter's sandbox: Amazon Bedrock AgentCore Code Interpreter sessions.

The same adapter runs on AWS and in the local stack, whose emulated AWS serves the AgentCore
data-plane calls it makes (``local/emulator/agentcore.py``) with a local worker process. A
session is a sandbox with a Python process whose variables persist between calls; the service
installs :mod:`.runner` in it first, then runs each of the model's calls through it.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

logger = Logger()
BUILT_IN_INTERPRETER = "aws.codeinterpreter.v1"
# /mnt/data to the model: a folder of the session's working directory (runner.py's _sa_data).
DATA = "data/"
# What ends a call's output, before its report (runner.py's _sa_MARK).
REPORT_MARK = "\x1f"
RUNNER_SOURCE = (Path(__file__).with_name("runner.py")).read_text(encoding="utf-8")
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
# The run's last_error code when AgentCore refuses with these (anything else: server_error).
UNAVAILABLE_CODES = {
    "ServiceQuotaExceededException": "rate_limit_exceeded",
    "ThrottlingException": "rate_limit_exceeded",
}


class SessionGone(Exception):
    """The session ended (timed out, stopped, or its sandbox died): its state is lost."""


class SandboxUnavailable(Exception):
    """No session could be had (quota, throttling, permissions): the run cannot go on."""

    def __init__(self, code: str, message: str, aws_code: str = "") -> None:
        super().__init__(message)
        self.code = code  # the run's last_error code
        self.message = message
        self.aws_code = aws_code


@dataclass(frozen=True)
class OutputFile:
    path: str  # under /mnt/data (a file the code wrote), or of a figure outside it
    data: bytes
    figure: bool = False  # a chart the code drew but did not save (shown, not a file in /mnt/data)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def image_type(self) -> str | None:
        return IMAGE_TYPES.get(os.path.splitext(self.path)[1].lower())


@dataclass
class Execution:
    logs: str
    error: bool = False
    timed_out: bool = False
    files: list[OutputFile] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # written, but over a limit (or unreadable): not kept
    session_lost: bool = False  # the session ended during the call: the next call needs a new one


@dataclass(frozen=True)
class Limits:
    call_seconds: float
    logs_characters: int
    file_bytes: int
    files_per_call: int


def limits() -> Limits:
    return Limits(
        call_seconds=float(os.environ.get("CODE_INTERPRETER_CALL_SECONDS", "120")),
        logs_characters=int(os.environ.get("CODE_INTERPRETER_LOGS_CHARACTERS", "20000")),
        # A file comes back base64 in one event, which botocore takes up to 24 MB.
        file_bytes=int(os.environ.get("CODE_INTERPRETER_FILE_BYTES", str(16 * 1024 * 1024))),
        files_per_call=int(os.environ.get("CODE_INTERPRETER_FILES_PER_CALL", "20")),
    )


class Sandbox:
    """AgentCore Code Interpreter sessions of one interpreter (built-in or a custom one)."""

    def __init__(self, interpreter: str | None = None, client: Any = None, calls: Any = None) -> None:
        self.interpreter = interpreter or os.environ.get("CODE_INTERPRETER_ID") or BUILT_IN_INTERPRETER
        self.client = client or _client(retries=3)
        # The model's code goes through a client that never retries (a retry would run it twice)
        # and waits as long as a call may run.
        self.calls = calls or (client if client is not None else _client(retries=1))

    # ------------------------------------------------------------ sessions

    def start(self, name: str, timeout_seconds: int) -> str:
        """A new session with the runner installed; its id."""
        try:
            started = self.client.start_code_interpreter_session(
                codeInterpreterIdentifier=self.interpreter, name=name, sessionTimeoutSeconds=timeout_seconds
            )
        except ClientError as error:
            raise _unavailable(error) from error
        session_id = str(started["sessionId"])
        try:
            ready = self._invoke(session_id, "executeCode", {"code": RUNNER_SOURCE, "language": "python"})
        except SessionGone as error:
            raise SandboxUnavailable("server_error", "The code interpreter session ended as it started.") from error
        if '"ready": true' not in _stdout(ready):
            self.stop(session_id)
            raise SandboxUnavailable("server_error", "The code interpreter session could not be prepared.")
        return session_id

    def stop(self, session_id: str) -> None:
        """Stop a session; one that already ended is fine."""
        try:
            self.client.stop_code_interpreter_session(codeInterpreterIdentifier=self.interpreter, sessionId=session_id)
        except ClientError as error:
            if _code(error) not in ("ResourceNotFoundException", "ConflictException"):
                logger.warning("could not stop a code interpreter session", extra={"error": _code(error)})
        except BotoCoreError as error:  # it ends by itself at its timeout: nothing waits on this
            logger.warning("could not stop a code interpreter session", extra={"error": str(error)})

    # ------------------------------------------------------------ files and code

    def write_file(self, session_id: str, name: str, data: bytes) -> None:
        """Put a file in the session's data directory (``/mnt/data`` to the model); one per call,
        as each may be up to AgentCore's 100 MB inline."""
        result = self._invoke(session_id, "writeFiles", {"content": [{"path": DATA + name, "blob": data}]})
        if result.get("isError"):
            raise SandboxUnavailable("server_error", "The files could not be written to the code interpreter.")

    def execute(self, session_id: str, code: str, limits: Limits) -> Execution:
        """Run the model's code; its logs, and the files it wrote (read back, within the limits).

        :class:`SessionGone` means the code did not run (the session had ended); a session that
        ends while the code runs is an :class:`Execution` with ``session_lost``."""
        request = {"code": f"_sa_run({code!r}, {limits.call_seconds!r})", "language": "python"}
        try:
            result = self._execute_when_free(session_id, request, limits.call_seconds)
        except (BotoCoreError, HTTPError):  # past the time limit and deaf to it (C code), or the link broke
            self.stop(session_id)
            stopped = f"The code ran for more than {limits.call_seconds:g} seconds and could not be stopped"
            ended = f"{stopped}: its session was ended, its variables are gone, and the next call starts a new one."
            return Execution(logs=ended, error=True, timed_out=True, session_lost=True)
        output = _stdout(result)
        logs, mark, report_line = output.rpartition(REPORT_MARK)
        if not mark:  # no report: the runner is gone (a reset kernel) or the sandbox died running the code
            if "_sa_run" in output + _stderr(result) and "NameError" in output + _stderr(result):
                raise SessionGone("the session lost its state before the code ran")
            ended = (
                "The Python session ended while this code ran (it may have used too much memory or time): "
                "its variables are gone, and the next call starts a new session."
            )
            return Execution(
                logs=_cut(output + _stderr(result), limits.logs_characters) + "\n" + ended,
                error=True,
                session_lost=True,
            )
        report = _json_object(report_line)
        execution = Execution(
            logs=_cut(logs + _stderr(result), limits.logs_characters),
            error=bool(report.get("error")),
            timed_out=bool(report.get("timed_out")),
        )
        entries = [(f, False) for f in report.get("files") or []] + [(f, True) for f in report.get("figures") or []]
        for entry, figure in entries:
            path = posixpath.normpath(str(entry.get("path", "")))
            if not path.startswith(("data/", "figures/")):
                continue  # reported by code that replaced the runner's helpers: not ours to read
            shown = path.removeprefix(DATA)
            if len(execution.files) >= limits.files_per_call or int(entry.get("size", 0)) > limits.file_bytes:
                execution.too_large.append(shown)
                continue
            data = self.read_file(session_id, path)
            if data is None:
                execution.too_large.append(shown)
            else:
                execution.files.append(OutputFile(shown, data, figure))
        return execution

    def _execute_when_free(self, session_id: str, request: dict[str, Any], patience: float) -> dict[str, Any]:
        """executeCode, waiting while the session still runs an earlier call (ConflictException):
        the code of a run cancelled mid-call runs on until its own limit."""
        give_up = time.monotonic() + patience
        while True:
            try:
                return self._invoke(session_id, "executeCode", request, client=self.calls)
            except SandboxUnavailable as busy:
                if busy.aws_code != "ConflictException" or time.monotonic() > give_up:
                    raise
                time.sleep(2)

    def read_file(self, session_id: str, path: str) -> bytes | None:
        """One file of the session (one per call: each event must fit botocore's 24 MB); None if
        it cannot be read (gone, a link, too large for an event, or the session ended after the
        code ran: the next call finds that out, and the code is not run again)."""
        try:
            result = self._invoke(session_id, "readFiles", {"paths": [path]})
        except (SandboxUnavailable, SessionGone, BotoCoreError):
            return None
        for block in result.get("content") or [] if not result.get("isError") else []:
            resource = block.get("resource") or {}
            if resource.get("blob") is not None:
                return bytes(resource["blob"])
            if resource.get("text") is not None:
                return str(resource["text"]).encode("utf-8")
        return None

    def _invoke(self, session_id: str, name: str, arguments: dict[str, Any], client: Any = None) -> dict[str, Any]:
        """One tool call; the ``result`` event's body. A missing session is :class:`SessionGone`."""
        try:
            response = (client or self.client).invoke_code_interpreter(
                codeInterpreterIdentifier=self.interpreter, sessionId=session_id, name=name, arguments=arguments
            )
            result: dict[str, Any] = {}
            for event in response["stream"]:  # an error event raises here, as a ClientError
                result = event.get("result", result)
            return result
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise SessionGone(str(error)) from error
            raise _unavailable(error) from error


def _unavailable(error: ClientError) -> SandboxUnavailable:
    code = _code(error)
    message = error.response.get("Error", {}).get("Message") or code
    return SandboxUnavailable(
        UNAVAILABLE_CODES.get(code, "server_error"), f"The code interpreter is not available ({code}): {message}", code
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "")


def _stdout(result: dict[str, Any]) -> str:
    structured = result.get("structuredContent") or {}
    if "stdout" in structured:
        return str(structured.get("stdout") or "")
    return "".join(str(b.get("text") or "") for b in result.get("content") or [] if b.get("type") == "text")


def _stderr(result: dict[str, Any]) -> str:
    return str((result.get("structuredContent") or {}).get("stderr") or "")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


@lru_cache(maxsize=2)
def _client(retries: int) -> Any:
    import boto3

    from ..config import boto_config

    # A call may run for the call limit: botocore's 60 s read timeout would cut it.
    read_timeout = limits().call_seconds + 60
    config = boto_config().merge(
        Config(read_timeout=read_timeout, retries={"total_max_attempts": retries, "mode": "standard"})
    )
    return boto3.client("bedrock-agentcore", config=config)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
