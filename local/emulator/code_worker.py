"""The long-lived Python worker behind one emulated AgentCore Code Interpreter session.

Started by :mod:`local.emulator.agentcore_sessions` as ``python -I code_worker.py REQ REPLY DIR
CPU_SECONDS MEMORY_MB FILE_MB``; it imports only the standard library (it runs in the sandbox's
interpreter, which may have none of the repository's packages). It reads one JSON request a line
from fd REQ and writes one JSON reply a line to fd REPLY; fds 0, 1 and 2 are not the protocol,
so user code that reads stdin, prints, or writes to fd 1 (``os.system``) cannot corrupt it.

Requests: ``{"op": "execute", "code": str, "clearContext": bool}`` runs Python in the session's
namespace (variables persist between requests, as in AgentCore); ``{"op": "command", "command":
str}`` runs a shell command in the session directory. Both reply ``{"stdout", "stderr",
"exitCode", "executionTime"}``.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import linecache
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from typing import Any

_cells = 0


def _limit(kind: int, value: int) -> None:
    """Soft and hard limit both: user code cannot raise them again."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(kind, (value, value))


def apply_limits(cpu_seconds: int, memory_mb: int, file_mb: int) -> None:
    """Set before any request is read, so user code only ever runs under them (the same effect as
    a preexec_fn, without running Python between fork and exec in a threaded server)."""
    _limit(resource.RLIMIT_CPU, cpu_seconds)
    if sys.platform != "darwin":  # macOS accepts RLIMIT_AS but does not enforce it
        _limit(resource.RLIMIT_AS, memory_mb << 20)
    _limit(resource.RLIMIT_FSIZE, file_mb << 20)
    _limit(resource.RLIMIT_NOFILE, 256)


def orphaned(directory: str) -> None:
    """The emulator is gone without killing us (it was SIGKILLed): remove the session directory
    and kill our process group, as the emulator would have."""
    shutil.rmtree(directory, ignore_errors=True)
    os.killpg(0, signal.SIGKILL)


def watch_parent(directory: str) -> None:
    """Notice the emulator's death even while user code runs (the request pipe's EOF says it
    too, but only between requests)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        orphaned(directory)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def fresh_namespace() -> dict[str, Any]:
    """A new ``__main__`` module, so pickle and friends find functions defined by user code."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def run_cell(code: str, namespace: dict[str, Any]) -> None:
    """Run code as a notebook cell: a final expression's value, if not None, is printed (repr)."""
    global _cells
    _cells += 1
    filename = f"<cell-{_cells}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    tree = ast.parse(code, filename, "exec")
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        tree.body.pop()
    exec(compile(tree, filename, "exec"), namespace)
    if isinstance(last, ast.Expr):
        value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
        if value is not None:
            namespace["_"] = value
            print(repr(value))


def user_traceback(error: BaseException) -> str:
    """The traceback without this worker's own frames, as a notebook shows it."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


@contextlib.contextmanager
def captured_fds() -> Any:
    """Point fds 1 and 2 at temporary files for one execution; yields a function that reads
    what was written there (by subprocesses or C code), so it joins stdout and stderr."""
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        files = (out_file, err_file)
        saved = [os.dup(1), os.dup(2)]
        for target, file in zip((1, 2), files, strict=True):
            os.dup2(file.fileno(), target)

        def read() -> list[str]:
            texts = []
            for file in files:
                file.seek(0)
                texts.append(file.read().decode(errors="replace"))
            return texts

        try:
            yield read
        finally:
            for target, fd in zip((1, 2), saved, strict=True):
                os.dup2(fd, target)
                os.close(fd)


def execute(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    exit_code = 0
    start = time.perf_counter()
    with captured_fds() as read_fds:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run_cell(code, namespace)
            except SystemExit as stop:
                exit_code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if stop.code is not None and not isinstance(stop.code, int):
                    print(stop.code, file=err)
            except BaseException as error:  # user code: report whatever it raised
                err.write(user_traceback(error))
                exit_code = 1
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
        fd_out, fd_err = read_fds()
    return {
        "stdout": out.getvalue() + fd_out,
        "stderr": err.getvalue() + fd_err,
        "exitCode": exit_code,
        "executionTime": round(time.perf_counter() - start, 6),
    }


def command(line: str, directory: str) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run(line, shell=True, cwd=directory, stdin=subprocess.DEVNULL, capture_output=True)
    return {
        "stdout": done.stdout.decode(errors="replace"),
        "stderr": done.stderr.decode(errors="replace"),
        "exitCode": done.returncode,
        "executionTime": round(time.perf_counter() - start, 6),
    }


def main(argv: list[str]) -> None:
    request_fd, reply_fd, directory = int(argv[0]), int(argv[1]), argv[2]
    apply_limits(int(argv[3]), int(argv[4]), int(argv[5]))
    watch_parent(directory)
    os.chdir(directory)
    requests = os.fdopen(request_fd, "rb")
    replies = os.fdopen(reply_fd, "wb")
    namespace = fresh_namespace()

    def reply(body: dict[str, Any]) -> None:
        replies.write(json.dumps(body).encode() + b"\n")
        replies.flush()

    reply({"ready": True})
    for line in requests:
        request = json.loads(line)
        if request.get("op") == "command":
            reply(command(request["command"], directory))
            continue
        if request.get("clearContext"):
            namespace = fresh_namespace()
        reply(execute(request["code"], namespace))
    orphaned(directory)  # EOF: the emulator kills us with SIGKILL, so only its death closes the pipe


if __name__ == "__main__":
    main(sys.argv[1:])
