"""Lambda SnapStart: what an environment restored from a snapshot must redo before it serves.

With SnapStart, Lambda runs a function's init once, when a version is published, snapshots the
environment, and restores that one snapshot into every new execution environment, for days and
many times over. Whatever init left that must be neither kept nor shared is redone after a
restore (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html):

- provider credentials loaded from SSM or Secrets Manager: a key rotated since the snapshot must
  be read again (``model.load_provider_credentials(force=True)``, when init loaded them);
- boto3: every client's connection pool (sockets open when the snapshot was taken are dead after
  it, and a request on one may wait for its read timeout): the pools are closed, the clients
  kept (building one again costs 0.1-0.3 s here), and they connect afresh on their next request;
  new clients come from a new default session (credentials resolved again, the loaded service
  models kept);
- Powertools Parameters' cached values;
- litellm's cached HTTP clients (openai's httpx pools), if litellm is loaded, and the direct
  adapter's httpx clients (``agent/models/openai_chat.py``);
- the ``random`` module's state, or every restored environment would draw the same numbers.
  Ids use ``secrets`` (the kernel's generator), not ``random``.

A SnapStart function opts in with one line in its init, before anything makes a boto3 client:
``import assistants_core.snapstart`` (it records each botocore HTTP session made from then on, by
wrapping ``URLLib3Session.__init__``, so that the hooks can close them all, Powertools' too).
The hooks are registered with ``snapshot_restore_py``, which Lambda's Python runtime provides
(and so does the local stack's, ``local/runtime/``). Where neither runtime runs the code (a unit
test importing a handler), the module is absent and nothing is registered:
without a runtime there is no snapshot either.
"""

from __future__ import annotations

import functools
import importlib
import random
import sys
import time
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger()

# Every botocore HTTP session made after this module is imported (one per client): the hooks close
# their pools. A SnapStart function imports this module before it makes any client.
_http_sessions: weakref.WeakSet[Any] = weakref.WeakSet()


def _track_http_sessions() -> None:
    from botocore.httpsession import URLLib3Session

    original = URLLib3Session.__init__
    if getattr(original, "tracked_by_snapstart", False):
        return

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _http_sessions.add(self)

    init.tracked_by_snapstart = True  # type: ignore[attr-defined]
    URLLib3Session.__init__ = init  # type: ignore[method-assign]


def close_connections() -> None:
    """Close every client's pooled connections (the clients stay usable) and drop cached HTTP
    clients and parameter values."""
    for session in list(_http_sessions):
        session.close()
    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

        for provider in DEFAULT_PROVIDERS.values():
            provider.clear_cache()
    litellm = sys.modules.get("litellm")
    if litellm is not None and hasattr(litellm, "in_memory_llm_clients_cache"):
        litellm.in_memory_llm_clients_cache.flush_cache()
    direct = sys.modules.get("assistants_core.agent.models.openai_chat")
    if direct is not None:
        direct.close_clients()


def renew_session() -> None:
    """A new default boto3 session (credentials resolved afresh), keeping the service models the
    old one loaded, so that building the clients again costs no JSON parsing."""
    import boto3

    old = boto3.DEFAULT_SESSION
    boto3.setup_default_session()
    if old is not None:
        new_session: Any = boto3.DEFAULT_SESSION
        new_session._session.register_component("data_loader", old._session.get_component("data_loader"))


def before_snapshot() -> None:
    """Close what init opened rather than freeze it into the snapshot."""
    close_connections()


def after_restore() -> None:
    """Redo, in a restored environment, what must not come from the snapshot."""
    started = time.perf_counter()
    random.seed()  # from os.urandom: this environment's own sequence
    renew_session()
    close_connections()
    model = sys.modules.get("assistants_core.agent.model")
    if model is not None and model._credentials_loaded:
        model.load_provider_credentials(force=True)
    logger.info(
        "restored from a SnapStart snapshot: clients, credentials and random state renewed",
        extra={"after_restore_ms": round((time.perf_counter() - started) * 1000, 1)},
    )


def _runtime_hooks() -> ModuleType | None:
    try:
        return importlib.import_module("snapshot_restore_py")
    except ImportError:
        return None  # no Lambda runtime (unit tests, benchmarks): no snapshot, nothing to redo


def register() -> bool:
    """Register the hooks with the runtime's ``snapshot_restore_py``; False where there is none."""
    hooks = _runtime_hooks()
    if hooks is None:
        return False
    _track_http_sessions()
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)
    return True


def load_before_snapshot(*work: Callable[[], object]) -> None:
    """Run ``work`` in a SnapStart init, just before the snapshot, so that every restored
    environment starts with it done. Without a snapshot nothing runs: an init whose time a user
    waits for loads only what the first request needs (the runtime runs these hooks only for a
    SnapStart init, last registered first, so before the connections are closed)."""
    hooks = _runtime_hooks()
    if hooks is None:
        return
    for function in reversed(work):
        hooks.register_before_snapshot(function)


registered = register()
