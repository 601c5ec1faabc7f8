"""Fixes and additions to moto, so the emulated AWS behaves as AWS documents where the app relies
on it. :func:`install` applies them all; call it before moto serves a request."""

from __future__ import annotations


def install() -> None:
    """Apply every fix and addition of this package to moto; calling it again changes nothing."""
    from . import dynamodb_item_size, dynamodb_transactions, s3vectors, stepfunctions

    dynamodb_transactions.install()
    dynamodb_item_size.install()
    s3vectors.install()
    stepfunctions.cache_asl_parsing()
    stepfunctions.share_service_clients()


def shutdown() -> None:
    """Kill what the emulator started outside this process before it exits: code interpreter
    workers run in process groups of their own, and ``os._exit`` skips their atexit cleanup."""
    import sys

    workers = sys.modules.get(f"{__name__}.agentcore_worker")
    if workers is not None:
        workers.kill_all()
