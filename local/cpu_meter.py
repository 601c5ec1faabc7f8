"""CPU time per function in the local stack's shared processes, for ``make bench``.

On Lambda each invocation has its own execution environment, and what it costs is that
environment's time. The local stack runs every function in two Python processes, side by side
with the emulators, so a process's CPU says nothing about a single function. This meter charges
each function the CPU of the threads while they run its code:

- the thread an invocation runs on (:meth:`local.lambda_runtime.Functions.invoke`, a Step
  Functions task or the authorizer), from the handler's start to its return;
- the event loop's steps of an API function's ASGI call (the gateway starts it in a context that
  names the function; the tasks it spawns, such as a streamed response's, inherit that context),
  measured per callback in ``asyncio.Handle._run``;
- the work such code hands to other threads: ``ThreadPoolExecutor.submit`` (asyncio's
  ``to_thread``, the agent's model prefetch, boto3's parallel S3 reads), ``anyio.to_thread``
  (FastAPI's sync endpoints and dependencies), and threads it starts (the event writer's flush
  ``Timer``), each measured on its own thread.

``time.thread_time`` counts a thread's own CPU, user and system, and nothing while the thread
waits for I/O or for the GIL, so work interleaved on one thread (the event loop, a pool worker) is
split exactly at the boundaries above. Regions nest: a region inside another (an invocation on a
pool worker) pauses the outer one, so nothing is counted twice. Not counted in any function: the
emulators serving the functions' requests (moto, DynamoDB Local, the Step Functions interpreter),
uvicorn's HTTP parsing and the gateway's routing; :func:`snapshot` reports the process's whole CPU
beside the functions' so that the rest shows.

The stack installs it only with ``LOCAL_CPU_METER=1`` (``tests.bench`` sets it).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

PATH = "/_local/cpu"  # not part of the API: the gateway answers it with both processes' meters


class Meter:
    """One function's CPU seconds and invocations so far (in this process)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cpu = 0.0
        self.invocations = 0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.cpu += seconds


_CURRENT: ContextVar[Meter | None] = ContextVar("local_cpu_meter", default=None)
_meters: dict[str, Meter] = {}
_meters_lock = threading.Lock()
_stacks = threading.local()  # per thread: [meter or None, thread_time when it last resumed]
_installed = False


def meter(name: str) -> Meter:
    with _meters_lock:
        found = _meters.get(name)
        if found is None:
            found = _meters[name] = Meter(name)
        return found


def _enter(charged: Meter | None) -> None:
    stack: list[list[Any]] | None = getattr(_stacks, "stack", None)
    if stack is None:
        stack = _stacks.stack = []
    moment = time.thread_time()
    if stack and stack[-1][0] is not None:
        stack[-1][0].add(moment - stack[-1][1])  # the enclosing region pauses
    stack.append([charged, moment])


def _exit(charged: Meter | None = None) -> None:
    """Close this thread's innermost region, charging ``charged`` if given, else whom it named."""
    stack: list[list[Any]] = _stacks.stack
    moment = time.thread_time()
    named, started = stack.pop()
    target = charged or named
    if target is not None:
        target.add(moment - started)
    if stack:
        stack[-1][1] = moment  # the enclosing region resumes


@contextmanager
def charging(name: str) -> Iterator[Meter]:
    """Name function ``name`` as the one whose code runs in this context from now on: an
    invocation. Event loop steps and hand-offs in this context are charged to it."""
    charged = meter(name)
    with charged._lock:
        charged.invocations += 1
    token = _CURRENT.set(charged)
    try:
        yield charged
    finally:
        _CURRENT.reset(token)


@contextmanager
def invocation(name: str) -> Iterator[Meter]:
    """An invocation running on this thread: its CPU, and what it hands to others, go to ``name``."""
    with charging(name) as charged:
        _enter(charged)
        try:
            yield charged
        finally:
            _exit()


def _metered_call(charged: Meter | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    token = _CURRENT.set(charged)
    _enter(charged)
    try:
        return fn(*args, **kwargs)
    finally:
        _exit()
        _CURRENT.reset(token)


# Off unless asked for (``make bench`` asks): the patches add clock reads to every event-loop step.
ENABLED = os.environ.get("LOCAL_CPU_METER", "") not in ("", "0", "false")


def install() -> None:
    """Patch the hand-offs listed in the module's docstring (idempotent; call before serving)."""
    global _installed
    if _installed:
        return
    _installed = True
    handle_run = asyncio.events.Handle._run

    def run(self: asyncio.events.Handle) -> None:
        context = self._context  # type: ignore[attr-defined]
        before = context.get(_CURRENT) if context is not None else None
        _enter(before)
        try:
            handle_run(self)
        finally:
            # A step that named its function (the gateway's) is charged to it entirely.
            _exit(context.get(_CURRENT) if context is not None else None)

    asyncio.events.Handle._run = run  # type: ignore[method-assign]

    submit = ThreadPoolExecutor.submit

    def metered_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, _metered_call, _CURRENT.get(), fn, *args, **kwargs)

    ThreadPoolExecutor.submit = metered_submit  # type: ignore[method-assign,assignment]

    start = threading.Thread.start
    from concurrent.futures.thread import _worker as pool_worker

    def metered_start(self: threading.Thread) -> None:
        charged = _CURRENT.get()
        # A pool's worker outlives the invocation that started it: only its tasks are charged.
        pooled = getattr(self, "_target", None) is pool_worker or type(self).__name__ == "WorkerThread"
        if charged is not None and not pooled:
            self.run = functools.partial(_metered_call, charged, self.run)  # type: ignore[method-assign]
        start(self)

    threading.Thread.start = metered_start  # type: ignore[method-assign]

    import anyio.to_thread

    run_sync = anyio.to_thread.run_sync

    async def metered_run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_sync(functools.partial(_metered_call, _CURRENT.get(), func), *args, **kwargs)

    anyio.to_thread.run_sync = metered_run_sync  # type: ignore[assignment]


def snapshot() -> dict[str, Any]:
    """Every function's CPU seconds and invocations so far, and this process's CPU seconds."""
    with _meters_lock:
        functions = {name: {"cpu": m.cpu, "invocations": m.invocations} for name, m in _meters.items()}
    return {"process_cpu": time.process_time(), "functions": functions}
