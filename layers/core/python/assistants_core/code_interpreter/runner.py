"""The helper the service installs in each code interpreter session (AgentCore's, or the local
stack's emulation of it): sent as source with the session's first ``executeCode``, never
imported by the app.

Why it exists: OpenAI's interpreter behaved like a notebook, so the model expects the value of
the last expression in the logs, tracebacks it can read, files under ``/mnt/data`` and charts
that appear without being saved. The sandbox only runs code; this helper adds those habits the
same way on every backend, with a per-call time limit and a cap on what a call may print, and
ends each call's output with a report of the files it wrote (after ``REPORT_MARK``).

The model's code runs in a namespace of its own that lives as long as the session, so that
it can name its variables ``os``, ``json`` or even ``len`` without breaking this helper; the
helper's own names start with ``_sa_`` to stay out of the way of the kernel's.
"""

# ruff: noqa: N816, N801 - the helper's names are chosen to stay out of the model's way
import ast as _sa_ast
import builtins as _sa_builtins
import json as _sa_json
import linecache as _sa_linecache
import os as _sa_os
import signal as _sa_signal
import sys as _sa_sys
import traceback as _sa_traceback
import warnings as _sa_warnings

_sa_MARK = "\x1f"  # sandbox.REPORT_MARK: what follows it, on the last line, is the call's report
_sa_PRINT_LIMIT = 1_000_000  # characters a call may print; the service keeps far fewer
# The session's working directory holds the sandbox's own files (.ipython, caches); /mnt/data is
# a clean folder beside them, which the code starts in. Reported paths are relative to the root.
_sa_root = _sa_os.getcwd()
_sa_data = _sa_os.path.join(_sa_root, "data")
_sa_figures = _sa_os.path.join(_sa_root, "figures")
_sa_os.makedirs(_sa_data, exist_ok=True)
_sa_os.chdir(_sa_data)
# Charts are collected from open figures; a notebook's inline backend would show and close them.
_sa_os.environ["MPLBACKEND"] = "Agg"
_sa_warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg
_sa_last: dict = {"error": False, "timed_out": False, "before": {}, "figures": []}
_sa_namespace: dict = {"__name__": "__main__", "__builtins__": _sa_builtins}  # the model's variables


class _sa_TimeLimit(BaseException):
    """Raised in the model's code when its time is up; a BaseException, so `except Exception` cannot keep it."""


class _sa_Output:
    """Stands in for stdout during a call: /mnt/data in the paths, at most _sa_PRINT_LIMIT characters."""

    def __init__(self, real) -> None:  # noqa: ANN001
        self.real, self.written, self.cut = real, 0, False

    def write(self, text: str) -> int:
        text = str(text).replace(_sa_data, "/mnt/data")
        room = _sa_PRINT_LIMIT - self.written
        if room <= 0:
            self.cut = True
            return len(text)
        self.written += len(text[:room])
        self.real.write(text[:room])
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def __getattr__(self, name: str):  # noqa: ANN204 - isatty, encoding, ... of the real stream
        return getattr(self.real, name)


def _sa_files() -> dict:
    found = {}
    for root, dirs, names in _sa_os.walk(_sa_data):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for name in names:
            path = _sa_os.path.join(root, name)
            if name.startswith(".") or _sa_os.path.islink(path):
                continue
            try:
                stat = _sa_os.stat(path)
            except OSError:
                continue
            found[_sa_os.path.relpath(path, _sa_root)] = [stat.st_mtime_ns, stat.st_size]
    return found


def _sa_alarm(signum, frame):  # noqa: ANN001, ANN202, ARG001
    raise _sa_TimeLimit()


def _sa_collect_figures() -> list:
    """Save the figures the code drew (and close them): OpenAI showed them without a savefig."""
    pyplot = _sa_sys.modules.get("matplotlib.pyplot")
    if pyplot is None or not pyplot.get_fignums():
        return []
    _sa_os.makedirs(_sa_figures, exist_ok=True)
    saved = []
    for number in pyplot.get_fignums():
        path = _sa_os.path.join(_sa_figures, f"figure-{len(_sa_os.listdir(_sa_figures))}.png")
        pyplot.figure(number).savefig(path, format="png", bbox_inches="tight")
        saved.append(_sa_os.path.relpath(path, _sa_root))
    pyplot.close("all")
    return saved


def _sa_execute(code: str, seconds: float) -> None:
    """Run the model's code in the session's namespace, as a notebook cell would."""
    code = code.replace("/mnt/data", _sa_data)
    _sa_last.update(error=False, timed_out=False, before=_sa_files(), figures=[])
    _sa_linecache.cache["<code>"] = (len(code), None, code.splitlines(True), "<code>")  # tracebacks show lines
    namespace = _sa_namespace
    timed = False
    try:
        _sa_signal.signal(_sa_signal.SIGALRM, _sa_alarm)
        _sa_signal.setitimer(_sa_signal.ITIMER_REAL, seconds)
        timed = True
    except (ValueError, AttributeError, OSError):  # not the main thread: the service's read timeout applies
        pass
    try:
        tree = _sa_ast.parse(code, "<code>", "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], _sa_ast.Expr) else None
        exec(compile(tree, "<code>", "exec"), namespace)
        if isinstance(last, _sa_ast.Expr):
            value = eval(compile(_sa_ast.Expression(last.value), "<code>", "eval"), namespace)
            if value is not None:
                _sa_builtins.print(_sa_builtins.repr(value))
    except _sa_TimeLimit:
        _sa_last["timed_out"] = True
        _sa_builtins.print(f"TimeoutError: the code ran for more than {seconds:g} seconds and was stopped.")
    except BaseException as error:  # noqa: BLE001 - the model reads every error, SystemExit included
        _sa_last["error"] = True
        frames = _sa_traceback.extract_tb(error.__traceback__)
        first = next((i for i, frame in enumerate(frames) if frame.filename == "<code>"), len(frames))
        if frames[first:]:  # the model's frames and what they called, not this helper's
            _sa_builtins.print("Traceback (most recent call last):")
            _sa_builtins.print("".join(_sa_traceback.format_list(frames[first:])), end="")
        _sa_builtins.print("".join(_sa_traceback.format_exception_only(type(error), error)), end="")
    finally:
        if timed:
            _sa_signal.setitimer(_sa_signal.ITIMER_REAL, 0)
    try:
        _sa_last["figures"] = _sa_collect_figures()
    except Exception as error:  # noqa: BLE001
        _sa_builtins.print(f"(could not save the figure: {error})")


def _sa_run(code: str, seconds: float) -> None:
    """One call: the code's output (paths shown as /mnt/data, capped), then the report."""
    real, output = _sa_sys.stdout, _sa_Output(_sa_sys.stdout)
    _sa_sys.stdout = output
    try:
        _sa_execute(code, seconds)
    finally:
        _sa_sys.stdout = real
    if output.cut:
        _sa_builtins.print(f"\n[output cut: more than {_sa_PRINT_LIMIT} characters were printed]")
    before = _sa_last["before"]
    changed = [{"path": p, "size": stat[1]} for p, stat in sorted(_sa_files().items()) if before.get(p) != stat]
    figures = [{"path": p, "size": _sa_os.path.getsize(_sa_os.path.join(_sa_root, p))} for p in _sa_last["figures"]]
    report = {"error": _sa_last["error"], "timed_out": _sa_last["timed_out"], "files": changed, "figures": figures}
    _sa_sys.stdout.write(_sa_MARK + _sa_json.dumps(report) + "\n")
    _sa_sys.stdout.flush()


_sa_builtins.print(_sa_json.dumps({"ready": True}))
