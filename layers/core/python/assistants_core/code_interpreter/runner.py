"""The helper the service installs in each code interpreter session (AgentCore's, or the local
stack's emulation of it): sent as source with the session's first ``executeCode``, never
imported by the app.

Why it exists: OpenAI's interpreter behaved like a notebook, so the model expects the value of
the last expression in the logs, tracebacks it can read, files under ``/mnt/data`` and charts
that appear without being saved. The sandbox only runs code; this helper adds those habits the
same way on every backend, with a per-call time limit, and reports which files a call wrote.
Everything it defines starts with ``_sa_`` so that the model's variables do not collide.
"""

# ruff: noqa: N816 - the helper's names are chosen to stay out of the model's way
import ast
import json
import linecache
import os
import signal
import sys
import traceback
import warnings

# The session's working directory holds the sandbox's own files (.ipython, caches); /mnt/data is
# a clean folder beside them, which the code starts in. Paths reported are relative to the root.
_sa_root = os.getcwd()
_sa_data = os.path.join(_sa_root, "data")
_sa_figures = os.path.join(_sa_root, "figures")
os.makedirs(_sa_data, exist_ok=True)
os.chdir(_sa_data)
_sa_last: dict = {"error": False, "timed_out": False, "before": {}, "figures": []}
warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() under Agg: figures are collected


class _sa_TimeLimit(BaseException):
    """Raised in the model's code when its time is up; a BaseException, so `except Exception` cannot keep it."""


def _sa_files() -> dict:
    found = {}
    for root, dirs, names in os.walk(_sa_data):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "tmp")]
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found[os.path.relpath(path, _sa_root)] = [stat.st_mtime_ns, stat.st_size]
    return found


def _sa_alarm(signum, frame):  # noqa: ANN001, ARG001
    raise _sa_TimeLimit()


def _sa_collect_figures() -> list:
    """Save the figures the code drew (and close them): OpenAI showed them without a savefig."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or not pyplot.get_fignums():
        return []
    os.makedirs(_sa_figures, exist_ok=True)
    saved = []
    for number in pyplot.get_fignums():
        path = os.path.join(_sa_figures, f"figure-{len(os.listdir(_sa_figures))}.png")
        pyplot.figure(number).savefig(path, format="png", bbox_inches="tight")
        saved.append(os.path.relpath(path, _sa_root))
    pyplot.close("all")
    return saved


def _sa_run(code: str, seconds: float) -> None:
    """Run the model's code in the session's namespace, as a notebook cell would."""
    if _sa_data != "/mnt/data":
        code = code.replace("/mnt/data", _sa_data)
    _sa_last.update(error=False, timed_out=False, before=_sa_files(), figures=[])
    linecache.cache["<code>"] = (len(code), None, code.splitlines(True), "<code>")  # tracebacks show the lines
    namespace = globals()
    timed = False
    try:
        signal.signal(signal.SIGALRM, _sa_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        timed = True
    except (ValueError, AttributeError, OSError):  # not the main thread: the sandbox's own limit applies
        pass
    try:
        tree = ast.parse(code, "<code>", "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        assert last is None or isinstance(last, ast.Expr)
        exec(compile(tree, "<code>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<code>", "eval"), namespace)
            if value is not None:
                print(repr(value))
    except _sa_TimeLimit:
        _sa_last["timed_out"] = True
        print(f"TimeoutError: the code ran for more than {seconds:g} seconds and was stopped.")
    except BaseException as error:  # noqa: BLE001 - the model reads every error, SystemExit included
        _sa_last["error"] = True
        frames = traceback.extract_tb(error.__traceback__)
        first = next((i for i, frame in enumerate(frames) if frame.filename == "<code>"), len(frames))
        if frames[first:]:  # the model's frames and what they called, not this helper's
            print("Traceback (most recent call last):")
            print("".join(traceback.format_list(frames[first:])), end="")
        print("".join(traceback.format_exception_only(type(error), error)), end="")
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout.flush()
    try:
        _sa_last["figures"] = _sa_collect_figures()
    except Exception as error:  # noqa: BLE001
        print(f"(could not save the figure: {error})")


def _sa_report() -> None:
    """Print, as one JSON line, how the last call went and which files it wrote or changed."""
    before = _sa_last["before"]
    changed = [
        {"path": path, "size": stat[1]} for path, stat in sorted(_sa_files().items()) if before.get(path) != stat
    ]
    figures = [{"path": path, "size": os.path.getsize(os.path.join(_sa_root, path))} for path in _sa_last["figures"]]
    report = {"error": _sa_last["error"], "timed_out": _sa_last["timed_out"], "files": changed, "figures": figures}
    print(json.dumps(report))


print(json.dumps({"ready": True, "data": _sa_data}))
