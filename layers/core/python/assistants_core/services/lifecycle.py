"""Run status transitions: timestamps, the thread's run lock, and the events each one emits.

Every writer of a run (the API, the agent step, the finalizer) changes its status through
:func:`transition`, which re-reads the run, refuses moves from a status it does not expect
(a run cancelled meanwhile stays cancelled), writes conditionally, and emits the event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from ..config import settings
from ..ids import now
from ..repository import (
    MESSAGE_PREFIX,
    RUN_PREFIX,
    THREAD_SK,
    ConcurrentModification,
    ItemTooLarge,
    Repository,
    StoredDoc,
    TransactionConflict,
    run_log_pk,
    step_prefix,
    step_sk,
    thread_pk,
)
from ..types import Run, RunStep, Usage
from ..types.events import MESSAGE_INCOMPLETE, run_event
from ..types.message import text_part
from ..types.run import TERMINAL_STATUSES, LastError
from .rate_limits import RUN_KEY_ATTRIBUTE, free_run_slot
from .run_events import EVENT_RETENTION_SECONDS, RunEventWriter, streamed_text

logger = Logger()
# Why a message left open by its run is incomplete, by how the run ended (MessageObject's reasons).
INCOMPLETE_REASONS = {"failed": "run_failed", "cancelled": "run_cancelled", "expired": "run_expired"}


@dataclass(frozen=True)
class RunRef:
    tenant: str
    thread_id: str
    run_id: str

    @property
    def pk(self) -> str:
        return thread_pk(self.tenant, self.thread_id)

    @property
    def sk(self) -> str:
        return RUN_PREFIX + self.run_id


def load_run(repo: Repository, ref: RunRef) -> Run | None:
    doc = repo.get_doc(ref.pk, ref.sk)
    return Run.model_validate(doc) if doc else None


def transition(
    repo: Repository,
    ref: RunRef,
    status: str,
    *,
    allowed_from: Iterable[str],
    events: RunEventWriter | None,
    change: Callable[[Run], None] | None = None,
    remove: Iterable[str] = (),
    stored: StoredDoc | None = None,
) -> Run | None:
    """Move a run to ``status`` if it is in one of ``allowed_from``; None if it is not.

    The new run and its ``thread.run.<status>`` event are written in one transaction.
    ``stored`` is the run as the caller last read or wrote it (saves a read; a stale one costs
    a failed conditional write, then a read). Reaching a terminal status releases the thread's
    run lock in that same transaction: a client that reads the end event (or the ended run) may
    add a message at once. The run's slot of its API key is freed after.
    """
    moved = transition_stored(
        repo, ref, status, allowed_from=allowed_from, events=events, change=change, remove=remove, stored=stored
    )
    return moved[0] if moved else None


def transition_stored(
    repo: Repository,
    ref: RunRef,
    status: str,
    *,
    allowed_from: Iterable[str],
    events: RunEventWriter | None,
    change: Callable[[Run], None] | None = None,
    remove: Iterable[str] = (),
    stored: StoredDoc | None = None,
) -> tuple[Run, StoredDoc] | None:
    """:func:`transition`, also returning the run as written: the ``stored`` of its next one."""
    allowed = set(allowed_from)
    remove = list(remove)
    holds_lock = True  # until a failed write shows the thread's lock is not this run's
    for _ in range(10):
        current = stored if stored is not None else repo.get(ref.pk, ref.sk)
        stored = None
        if current is None:
            return None
        run = Run.model_validate(current.doc)
        if run.status not in allowed:
            return None
        run.status = status  # type: ignore[assignment]
        _stamp(run)
        if change:
            change(run)
        doc = run.model_dump(mode="json")
        operations = [repo.op_save(ref.pk, ref.sk, doc, expected_version=current.version, remove=remove)]
        releasing = run.is_terminal and holds_lock
        if releasing:
            operations.append(_op_release(repo, ref))
        try:
            if events is not None:
                events.emit_many([(run_event(status), doc)], with_ops=operations)
            elif len(operations) == 1:
                repo.save(ref.pk, ref.sk, doc, expected_version=current.version, remove=remove)
            else:
                repo.transact(operations)
        except (ConcurrentModification, TransactionConflict):
            holds_lock = holds_lock and _holds_lock(repo, ref)
            continue
        if run.is_terminal:
            free_run_slot(repo, ref.tenant, current.attributes.get(RUN_KEY_ATTRIBUTE), ref.thread_id, ref.run_id)
        return run, current.saved_as(doc, remove)
    raise ConcurrentModification(f"run {ref.run_id}: too many concurrent changes")


def _op_release(repo: Repository, ref: RunRef) -> dict[str, Any]:
    """The write that frees the thread, if this run holds its lock."""
    return repo.op_update(
        ref.pk, THREAD_SK, "REMOVE active_run_id", "active_run_id = :run", values={":run": ref.run_id}
    )


def _holds_lock(repo: Repository, ref: RunRef) -> bool:
    """Whether the thread's lock names this run (not when the thread is gone)."""
    thread = repo.get(ref.pk, THREAD_SK)
    return thread is not None and thread.attributes.get("active_run_id") == ref.run_id


def _stamp(run: Run) -> None:
    moment = now()
    if run.status == "in_progress" and run.started_at is None:
        run.started_at = moment
    elif run.status == "completed" or run.status == "incomplete":
        run.completed_at = moment
    elif run.status == "failed":
        run.failed_at = moment
    elif run.status == "cancelled":
        run.cancelled_at = moment
    elif run.status == "expired":
        run.expires_at = min(run.expires_at or moment, moment)
    if run.status in TERMINAL_STATUSES:
        run.required_action = None
        if run.status != "expired":
            run.expires_at = None


def park_for_tool_outputs(
    repo: Repository,
    ref: RunRef,
    calls: list[dict[str, Any]],
    events: RunEventWriter,
    spent: Usage | None = None,
    stored: StoredDoc | None = None,
) -> str:
    """Move the run to ``requires_action`` for the client's function calls among ``calls`` (a
    step's recorded tool calls); returns the run's status."""
    required = {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                }
                for c in calls
                if c["type"] == "function"
            ]
        },
    }

    def park(run: Run) -> None:
        run.required_action = required
        if spent is not None:
            run.usage = (run.usage or Usage()) + spent
        run.expires_at = now() + settings().run_expiry_seconds

    parked = transition(
        repo, ref, "requires_action", allowed_from={"in_progress"}, events=events, change=park, stored=stored
    )
    if parked is not None:
        return parked.status
    current = load_run(repo, ref)
    return current.status if current else "missing"


def add_usage(repo: Repository, ref: RunRef, spent: Usage) -> None:
    """Count a turn's tokens on a run that goes on (a turn whose calls the service runs)."""

    def account(doc: dict[str, Any]) -> dict[str, Any] | None:
        if doc.get("status") != "in_progress":
            return None
        run = Run.model_validate(doc)
        run.usage = (run.usage or Usage()) + spent
        return run.model_dump(mode="json")

    repo.mutate(ref.pk, ref.sk, account)


def release_thread(repo: Repository, ref: RunRef) -> None:
    """Remove the thread's run lock if this run holds it (idempotent)."""
    from boto3.dynamodb.conditions import Attr

    with contextlib.suppress(ConcurrentModification):  # already released, or the thread was deleted
        repo.update_attributes(
            ref.pk, THREAD_SK, remove=["active_run_id"], condition=Attr("active_run_id").eq(ref.run_id)
        )


FAILABLE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})


def fail(repo: Repository, ref: RunRef, code: str, message: str, events: RunEventWriter | None) -> Run | None:
    """End an active run as failed with ``last_error`` and close its open steps.

    Whatever happens, the run ends: if its doc cannot be saved (a write DynamoDB refuses as too
    large, or its event with it, or its large values cannot reach S3), a minimal one is
    (:func:`_fail_minimal`, which stays inline), and the thread is unlocked even when that fails too.
    """
    error = LastError(code=code, message=message[:1000])  # type: ignore[arg-type]
    try:
        close_open_steps(repo, ref, "failed", events, last_error=error)
    except ItemTooLarge:  # a step or message that cannot be saved must not keep the run open
        logger.exception("could not close the run's open steps", extra={"run_id": ref.run_id})

    def set_error(run: Run) -> None:
        run.last_error = error

    try:
        return transition(repo, ref, "failed", allowed_from=FAILABLE, events=events, change=set_error, remove=_PARKED)
    except Exception:  # noqa: BLE001 - too large, S3 or DynamoDB failing, endless races: the run must still end
        logger.exception("could not save the failed run; saving a minimal one", extra={"run_id": ref.run_id})
        try:
            return _fail_minimal(repo, ref, error, events)
        finally:
            release_thread(repo, ref)


_PARKED = ("task_token", "tool_outputs")


def _fail_minimal(repo: Repository, ref: RunRef, error: LastError, events: RunEventWriter | None) -> Run | None:
    """The run as ``failed`` without what can make it too large to save (instructions, tools,
    metadata), its event logged apart and only if it can be: the last resort of :func:`fail`."""
    for _ in range(10):
        current = repo.get(ref.pk, ref.sk)
        if current is None:
            return None
        run = Run.model_validate(current.doc)
        if run.status not in FAILABLE:
            return run
        run = run.model_copy(
            update={"status": "failed", "instructions": "", "tools": [], "metadata": {}, "last_error": error}
        )
        _stamp(run)
        doc = run.model_dump(mode="json")
        try:
            repo.save(ref.pk, ref.sk, doc, expected_version=current.version, remove=_PARKED)
        except ConcurrentModification:
            continue
        free_run_slot(repo, ref.tenant, current.attributes.get(RUN_KEY_ATTRIBUTE), ref.thread_id, ref.run_id)
        if events is not None:
            try:
                events.emit_many([(run_event("failed"), doc)])
            except Exception:  # noqa: BLE001 - the run has ended; a stream ends on the status anyway
                logger.exception("could not log the minimal run's failure", extra={"run_id": ref.run_id})
        return run
    return None


def close_open_steps(
    repo: Repository, ref: RunRef, status: str, events: RunEventWriter | None, last_error: LastError | None = None
) -> None:
    """Mark the run's in-progress steps failed, cancelled or expired, and their messages incomplete.

    A message is closed before its step, in the order the agent itself closes them, with the
    text its deltas streamed: what the client saw. A cancelled run's agent step may still be
    receiving tokens; it sees the cancel within a second and leaves the closed message alone.
    """
    page = repo.list(ref.pk, step_prefix(ref.run_id), limit=100, order="asc")
    for doc in page.items:
        step = RunStep.model_validate(doc)
        if step.type == "message_creation" and step.status != "completed":
            message_id = step.step_details["message_creation"]["message_id"]
            close_open_message(repo, ref, message_id, INCOMPLETE_REASONS[status], events)
        if step.status != "in_progress":
            continue
        moment = now()

        def close(current: dict, moment: int = moment) -> dict | None:
            if current["status"] != "in_progress":
                return None
            current["status"] = status
            current[{"failed": "failed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[status]] = moment
            if last_error is not None:
                current["last_error"] = last_error.model_dump()
            return current

        updated = repo.mutate(ref.pk, step_sk(ref.run_id, step.id), close)
        if updated is not None and updated["status"] == status and events is not None:
            events.emit(f"thread.run.step.{status}", updated)


def close_open_message(
    repo: Repository, ref: RunRef, message_id: str, reason: str, events: RunEventWriter | None
) -> None:
    """Mark a message of the run incomplete if it is still in progress: its writer (the agent
    step) died or was stopped mid-answer. It keeps the text its deltas streamed, since its
    content is saved only when it closes.

    The message and the event that closes it are written in one transaction at the log's next
    number, so no delta lands between the text read and the event (streams drop any delta
    after it): if the agent appended meanwhile, the number is taken and the text is read again.
    """
    sk = MESSAGE_PREFIX + message_id
    for _ in range(10):
        stored = repo.get(ref.pk, sk)
        if stored is None or stored.doc.get("status") != "in_progress":
            return
        said, last_seq = streamed_text(repo, ref.tenant, ref.run_id, message_id)
        moment = now()
        doc = {
            **stored.doc,
            "status": "incomplete",
            "incomplete_at": moment,
            "incomplete_details": {"reason": reason},
            "content": [text_part(said)] if said else stored.doc["content"],
        }
        try:
            if events is None:
                repo.save(ref.pk, sk, doc, expected_version=stored.version)
            else:
                log, ttl = run_log_pk(ref.tenant, ref.run_id), moment + EVENT_RETENTION_SECONDS
                save = repo.op_save(ref.pk, sk, doc, expected_version=stored.version)
                repo.append_events(log, last_seq + 1, [(MESSAGE_INCOMPLETE, doc)], ttl=ttl, with_ops=[save])
        except ConcurrentModification:  # the agent wrote meanwhile (or took the number): read again
            continue
        return
