"""What the thread item says about its thread: does it exist, and which run holds its lock."""

from __future__ import annotations

from ..errors import NotFoundError
from ..repository import THREAD_SK, Repository, thread_pk


def require_thread(repo: Repository, tenant: str, thread_id: str) -> None:
    if repo.get(thread_pk(tenant, thread_id), THREAD_SK) is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")


def active_run(repo: Repository, tenant: str, thread_id: str) -> str | None:
    """The run holding the thread's lock (None if free); a 404 if the thread does not exist.

    Used after a write conditioned on the lock failed, to say why.
    """
    stored = repo.get(thread_pk(tenant, thread_id), THREAD_SK)
    if stored is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    active = stored.attributes.get("active_run_id")
    return str(active) if active else None
