"""Lambda SnapStart: what an environment restored from a snapshot must redo before it serves.

With SnapStart, Lambda runs a function's init once, when a version is published, snapshots the
environment, and restores that one snapshot into every new execution environment, for days and
many times over. Whatever init left that must be neither kept nor shared is redone after a
restore (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html):

- provider credentials loaded from SSM or Secrets Manager: a key rotated since the snapshot must
  be read again (``model.load_provider_credentials(force=True)``, when init loaded them);
- boto3: the default session's resolved credentials, and the cached clients with their connection
  pools (sockets open when the snapshot was taken are dead after it): the clients are dropped and
  built again on first use, from a new session that keeps the loaded service models;
- Powertools Parameters' providers (a boto3 client each) and their cache;
- litellm's cached HTTP clients (openai's httpx pools), if litellm is loaded;
- the ``random`` module's state, or every restored environment would draw the same numbers.
  Ids use ``secrets`` (the kernel's generator), not ``random``.

A SnapStart function opts in with one line in its init: ``import assistants_core.snapstart``.
The hooks are registered with ``snapshot_restore_py``, which Lambda's Python runtime provides
(and so does the local stack's, ``local/runtime/``). Where neither runtime runs the code (a unit
test importing a handler, ``tests.bench_cold``), the module is absent and nothing is registered:
without a runtime there is no snapshot either.
"""

from __future__ import annotations

import importlib
import random
import sys
import time
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger()

# Module-level caches (functools.lru_cache) that hold boto3 clients: (module, function). Only
# modules already imported are touched, so the hook imports nothing the function did not.
# tests/test_snapstart.py fails if a cache of a boto3 client is missing here.
CLIENT_CACHES: tuple[tuple[str, str], ...] = (
    ("assistants_core.repository", "default_repository"),
    ("assistants_core.repository.idempotency", "_base_layer"),
    ("assistants_core.blobs", "default_blob_store"),
    ("assistants_core.orchestrator", "default_orchestrator"),
    ("assistants_core.services.ingestion", "default_ingestion"),
    ("assistants_core.vectors.s3vectors", "_client"),
    ("assistants_core.vectors.s3vectors", "index_named"),
    ("assistants_core.code_interpreter.sandbox", "_client"),
)


def forget_clients() -> None:
    """Drop every cached boto3 client (and what holds one); they are built again on first use."""
    for module_name, function in CLIENT_CACHES:
        module = sys.modules.get(module_name)
        if module is not None:
            getattr(module, function).cache_clear()
    if "aws_lambda_powertools.utilities.parameters" in sys.modules:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # its providers and their boto3 clients too
    litellm = sys.modules.get("litellm")
    if litellm is not None and hasattr(litellm, "in_memory_llm_clients_cache"):
        litellm.in_memory_llm_clients_cache.flush_cache()


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
    forget_clients()


def after_restore() -> None:
    """Redo, in a restored environment, what must not come from the snapshot."""
    started = time.perf_counter()
    random.seed()  # from os.urandom: this environment's own sequence
    renew_session()
    forget_clients()
    model = sys.modules.get("assistants_core.agent.model")
    if model is not None and model._credentials_loaded:
        model.load_provider_credentials(force=True)
    logger.info(
        "restored from a SnapStart snapshot: clients, credentials and random state renewed",
        extra={"after_restore_ms": round((time.perf_counter() - started) * 1000, 1)},
    )


def register() -> bool:
    """Register the hooks with the runtime's ``snapshot_restore_py``; False where there is none."""
    try:
        hooks = importlib.import_module("snapshot_restore_py")
    except ImportError:
        return False  # no Lambda runtime (unit tests, benchmarks): no snapshot, nothing to redo
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)
    return True


registered = register()
