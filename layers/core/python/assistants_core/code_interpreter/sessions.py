"""A thread's code interpreter session: kept on the thread item, reused while it lives.

OpenAI kept a thread's Python state for an hour. Here a session is started on the thread's
first code call with that lifetime (``CODE_INTERPRETER_SESSION_SECONDS``), recorded on the
thread with the files already put in it, reused by every later run on the thread, and stopped
when the thread is deleted. Runs on one thread never overlap (the thread's run lock), so the
record needs no lock of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..ids import now
from ..repository import THREAD_SK, ConcurrentModification, Repository, thread_pk
from .sandbox import Sandbox, limits

ATTRIBUTE = "code_session"
# A session this close to its end is not used for another call: it could end mid-call (the
# call's limit, and time to put the files in).
MARGIN_SECONDS = 120


def lifetime_seconds() -> int:
    return int(os.environ.get("CODE_INTERPRETER_SESSION_SECONDS", "3600"))


@dataclass
class Session:
    id: str
    expires_at: int
    files: dict[str, str] = field(default_factory=dict)  # file id -> its path under /mnt/data

    def to_attribute(self) -> str:
        return json.dumps({"id": self.id, "expires_at": self.expires_at, "files": self.files})

    @classmethod
    def from_attribute(cls, raw: Any) -> Session | None:
        try:
            data = json.loads(str(raw))
            return cls(id=str(data["id"]), expires_at=int(data["expires_at"]), files=dict(data.get("files") or {}))
        except (ValueError, KeyError, TypeError):
            return None


def recorded(repo: Repository, tenant: str, thread_id: str) -> Session | None:
    raw = repo.get_attribute(thread_pk(tenant, thread_id), THREAD_SK, ATTRIBUTE)
    return Session.from_attribute(raw) if raw else None


def open_session(repo: Repository, sandbox: Sandbox, tenant: str, thread_id: str) -> tuple[Session, bool]:
    """The thread's live session, or a new one; True when the thread had one that ended, so the
    model must be told its variables are gone."""
    session = recorded(repo, tenant, thread_id)
    if session is not None and session.expires_at - MARGIN_SECONDS - limits().call_seconds > now():
        return session, False
    if session is not None:
        sandbox.stop(session.id)
    return start(repo, sandbox, tenant, thread_id), session is not None


def start(repo: Repository, sandbox: Sandbox, tenant: str, thread_id: str) -> Session:
    seconds = lifetime_seconds()
    session = Session(id=sandbox.start(thread_id, seconds), expires_at=now() + seconds)
    save(repo, sandbox, tenant, thread_id, session)
    return session


def replace(repo: Repository, sandbox: Sandbox, tenant: str, thread_id: str, gone: Session) -> Session:
    """A new session for one that ended between calls (:class:`.sandbox.SessionGone`)."""
    sandbox.stop(gone.id)
    return start(repo, sandbox, tenant, thread_id)


def forget(repo: Repository, tenant: str, thread_id: str) -> None:
    """The thread's session died: the next call starts another."""
    with contextlib.suppress(ConcurrentModification):  # the thread was deleted meanwhile
        repo.update_attributes(thread_pk(tenant, thread_id), THREAD_SK, remove=[ATTRIBUTE])


def save(repo: Repository, sandbox: Sandbox, tenant: str, thread_id: str, session: Session) -> None:
    try:
        repo.update_attributes(thread_pk(tenant, thread_id), THREAD_SK, set_values={ATTRIBUTE: session.to_attribute()})
    except ConcurrentModification:  # the thread was deleted meanwhile: nobody will use the session
        sandbox.stop(session.id)
