"""The local stack's ``snapshot_restore_py``: what Lambda's Python runtime provides for SnapStart.

Same API as AWS's module (https://github.com/aws/snapshot-restore-py, which Lambda's managed
Python 3.12+ runtimes ship on their path): ``register_before_snapshot`` and
``register_after_restore`` (called, or as decorators; extra arguments are passed to the hook),
and ``get_before_snapshot`` / ``get_after_restore``, the registries the runtime reads. The local
Lambda runtime (:mod:`local.lambda_runtime`) puts this directory on ``sys.path`` as Lambda puts
its own, and runs the hooks as AWS's runtime interface client does (``lambda_runtime_hooks_runner``).
App code imports it exactly as on AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register_after_restore", "register_before_snapshot"]

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before_snapshot_registry: list[Hook] = []
_after_restore_registry: list[Hook] = []


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` before the snapshot is taken (hooks run last-registered first)."""
    _before_snapshot_registry.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` after an environment is restored (hooks run in registration order)."""
    _after_restore_registry.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    return _before_snapshot_registry


def get_after_restore() -> list[Hook]:
    return _after_restore_registry
