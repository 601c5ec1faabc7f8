"""The tools of InvokeCodeInterpreter: what each ``name`` does with its ``arguments``, and the
``result`` event it answers (botocore 1.44.5's ``CodeInterpreterResult``).

Code runs in the session's worker. The file tools run here, in the emulator, on the session's
directory: every path is relative to it (or absolute inside it), and one that resolves outside
it, through ``..`` or a symlink, is a ValidationException. A file that is missing is a result
with ``isError`` (the tool failed, not the request), as for code that raises.

``executeCommand`` runs a shell command in the same worker's process group (so the wall-clock
bound and the session's end kill it too). ``startCommandExecution``, ``getTask``, ``stopTask``
and languages other than python are refused locally with a ValidationException.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
import shutil
from collections.abc import Callable
from typing import Any

from .agentcore_sessions import ApiError, Session

Result = dict[str, Any]
TOOLS = ("executeCode", "executeCommand", "readFiles", "listFiles", "removeFiles", "writeFiles")
UNSUPPORTED = ("startCommandExecution", "getTask", "stopTask")


def invalid(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def _string(arguments: dict[str, Any], key: str, required: bool = True) -> str:
    value = arguments.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise invalid(f"arguments.{key} must be a string")
    return value


def _paths(arguments: dict[str, Any]) -> list[str]:
    paths = arguments.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise invalid("arguments.paths must be a non-empty list of strings")
    return paths


def resolve(session: Session, path: str) -> str:
    """The absolute real path of ``path`` in the session directory; ValidationException outside."""
    root = session.directory
    try:
        full = os.path.realpath(os.path.join(root, path))  # an absolute path replaces root, as intended
    except ValueError as error:  # a NUL byte
        raise invalid(f"Path {path!r} is not valid: {error}") from error
    if full != root and not full.startswith(root + os.sep):
        raise invalid(f"Path {path!r} is outside the session's working directory")
    return full


def _mime(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _uri(path: str) -> str:
    return "file://" + path


def text_result(text: str, is_error: bool = False) -> Result:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def execution_result(reply: dict[str, Any]) -> Result:
    """The worker's reply as AgentCore shows an execution: the combined output as text, the
    parts in structuredContent, and isError when the exit code is not 0."""
    structured = {key: reply[key] for key in ("stdout", "stderr", "exitCode", "executionTime")}
    return {
        "content": [{"type": "text", "text": reply["stdout"] + reply["stderr"]}],
        "structuredContent": structured,
        "isError": reply["exitCode"] != 0,
    }


def prepare(session: Session, name: Any, arguments: Any) -> Callable[[], Result]:
    """Check the request now (its errors are HTTP errors, before any stream) and return what
    runs the tool (its failures are results with isError)."""
    if not isinstance(arguments, dict):
        arguments = {}
    if name in UNSUPPORTED:
        raise invalid(f"Tool {name} is not supported by the local emulator")
    if name == "executeCode":
        code = _string(arguments, "code")
        language = arguments.get("language", "python")
        if language != "python":
            raise invalid(f"Language {language!r} is not supported by the local emulator (python only)")
        request = {"op": "execute", "code": code, "clearContext": bool(arguments.get("clearContext"))}
        return lambda: execution_result(session.call(request))
    if name == "executeCommand":
        command = {"op": "command", "command": _string(arguments, "command")}
        return lambda: execution_result(session.call(command))
    if name == "writeFiles":
        return _prepare_write(session, arguments)
    if name == "readFiles":
        targets = [(path, resolve(session, path)) for path in _paths(arguments)]
        return lambda: _locked(session, lambda: _read(targets))
    if name == "listFiles":
        directory = resolve(session, _string(arguments, "directoryPath", required=False) or ".")
        return lambda: _locked(session, lambda: _list(directory))
    if name == "removeFiles":
        targets = [(path, resolve(session, path)) for path in _paths(arguments)]
        return lambda: _locked(session, lambda: _remove(session, targets))
    raise invalid(f"Unknown tool name {name!r}; expected one of {', '.join(TOOLS)}")


def _locked(session: Session, run: Callable[[], Result]) -> Result:
    """File tools wait for a running execution, as the sandbox serves one request at a time."""
    with session.lock:
        session.touch()
        return run()


def _prepare_write(session: Session, arguments: dict[str, Any]) -> Callable[[], Result]:
    content = arguments.get("content")
    if not isinstance(content, list) or not content:
        raise invalid("arguments.content must be a non-empty list of {path, text | blob}")
    files: list[tuple[str, bytes]] = []
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("path"), str):
            raise invalid("each arguments.content item needs a path")
        if isinstance(block.get("text"), str):
            data = block["text"].encode()
        elif isinstance(block.get("blob"), str):
            try:
                data = base64.b64decode(block["blob"], validate=True)
            except binascii.Error as error:
                raise invalid(f"blob of {block['path']!r} is not base64: {error}") from error
        else:
            raise invalid(f"content item {block['path']!r} needs text or blob")
        files.append((resolve(session, block["path"]), data))

    def write() -> Result:
        for full, data in files:
            try:
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as out:
                    out.write(data)
            except OSError as error:
                return text_result(f"Failed to write {full}: {error.strerror or error}", is_error=True)
        return text_result(f"Successfully wrote all {len(files)} files")

    return lambda: _locked(session, write)


def _read(targets: list[tuple[str, str]]) -> Result:
    blocks = []
    for path, full in targets:
        try:
            with open(full, "rb") as file:
                data = file.read()
        except OSError as error:
            return text_result(f"Failed to read {path}: {error.strerror or error}", is_error=True)
        resource: dict[str, Any] = {"uri": _uri(full), "mimeType": _mime(full)}
        try:
            resource.update(type="text", text=data.decode("utf-8"))
        except UnicodeDecodeError:
            resource.update(type="blob", blob=base64.b64encode(data).decode())
        blocks.append({"type": "resource", "resource": resource})
    return {"content": blocks, "isError": False}


def _list(directory: str) -> Result:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as error:
        return text_result(f"Failed to list {directory}: {error.strerror or error}", is_error=True)
    blocks = []
    for entry in entries:
        is_dir = entry.is_dir()
        size = 0 if is_dir else entry.stat().st_size
        blocks.append(
            {
                "type": "resource_link",
                "uri": _uri(os.path.join(directory, entry.name)),
                "name": entry.name,
                "description": "Directory" if is_dir else "File",
                "mimeType": "inode/directory" if is_dir else _mime(entry.name),
                "size": size,
            }
        )
    return {"content": blocks, "isError": False}


def _remove(session: Session, targets: list[tuple[str, str]]) -> Result:
    for path, full in targets:
        if full == session.directory:
            return text_result("Refusing to remove the session's working directory", is_error=True)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
        except OSError as error:
            return text_result(f"Failed to remove {path}: {error.strerror or error}", is_error=True)
    return text_result(f"Successfully removed all {len(targets)} files")
