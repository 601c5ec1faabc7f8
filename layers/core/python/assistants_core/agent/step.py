"""One task of the run state machine: the run's turns until it ends, waits, or needs the
service to run the model's code.

The state machine calls :func:`run_agent_step` and routes on the status it returns:
``requires_action`` parks the run until ``submit_tool_outputs`` resumes it, ``code`` runs the
model's code (RunCode) and comes back with ``resume``, ``waiting`` waits for the run's files.
A crashed or timed-out invocation is retried with the same input (``attempt`` > 0): the retry
replays the turn against what the earlier attempt logged (see :mod:`.replay`).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from ..config import settings
from ..ids import now
from ..repository import THREAD_SK, Repository, StoredDoc, step_prefix, step_sk
from ..services.lifecycle import RunRef, fail, load_run, transition_stored
from ..services.run_events import RunEventWriter
from ..services.vector_stores import touch
from ..types import Run, RunStep
from ..types import events as ev
from ..types.run import TERMINAL_STATUSES
from . import file_search
from .model import ModelError, Prefetch
from .replay import INTERRUPTED, Diverged, Replay
from .turn import CONTINUE, WAITING, Turn

logger = Logger()


def run_agent_step(
    repo: Repository,
    tenant: str,
    thread_id: str,
    run_id: str,
    event_seq: int = 0,
    *,
    resume: bool = False,
    attempt: int = 0,
) -> dict[str, Any]:
    """One turn; returns the run's status and the last event number, which the state machine
    hands to the next turn (``event_seq``: 0 if unknown). ``resume``: the run is in progress
    and goes on after the service ran the model's code. ``attempt``: Step Functions' retry
    count (a retry replays what the earlier attempts logged after ``event_seq``)."""
    ref = RunRef(tenant, thread_id, run_id)
    replay = Replay.load(repo, tenant, run_id, event_seq) if attempt > 0 and event_seq > 0 else None
    next_seq = replay.last_seq + 1 if replay else event_seq + 1 if event_seq > 0 else None
    events = RunEventWriter(repo, tenant, run_id, next_seq=next_seq)
    try:
        status: str
        if attempt > 0 and replay is None:  # nothing to replay against: do not risk a second answer
            failed = fail(repo, ref, "server_error", INTERRUPTED, events)
            status = failed.status if failed else "failed"
        else:
            status = _step(repo, ref, events, resume, replay)
    finally:
        events.close()
    return {"status": status, "event_seq": events.known_last_seq}


def _step(
    repo: Repository, ref: RunRef, events: RunEventWriter, resume: bool = False, replay: Replay | None = None
) -> str:
    thread_items = repo.partition_stored(ref.pk)  # the run and its thread's messages in one read
    stored = thread_items.get(ref.sk)
    if stored is None:
        return "missing"  # the thread was deleted
    run = Run.model_validate(stored.doc)
    if run.status in TERMINAL_STATUSES or run.status == "cancelling":
        return run.status
    if run.status == "requires_action":
        if replay is not None and replay.was_logged(ev.run_event("requires_action"), run.id):
            return run.status  # an earlier attempt parked the run, then died: it waits as it should
        failed = fail(repo, ref, "server_error", "The run could not wait for tool outputs.", events)
        return failed.status if failed else run.status
    outputs = stored.attributes.get("tool_outputs")
    thread = thread_items.get(THREAD_SK)
    search = file_search.settings_for(repo, ref.tenant, run, thread.doc if thread else None)
    if replay is not None:
        replay.observe(thread_items, run.id)
    if resume or (replay is not None and run.status == "in_progress"):  # resumed, or started by an earlier attempt
        if run.status != "in_progress":
            return run.status
        return _turns(repo, ref, run, events, search, replay=replay, stored_run=stored)
    if search is not None and not outputs and run.status == "queued" and _still_ingesting(search, run):
        return WAITING
    if outputs:
        _apply_tool_outputs(repo, ref, json.loads(str(outputs)), events, replay)
        if replay is None or not replay.was_logged(ev.run_event("queued"), run.id):
            events.emit(ev.run_event("queued"), run)
    # A first turn starts the model call now: marking the run in_progress overlaps its time to first token.
    first = Turn(repo, ref, run, events, search, replay=replay)
    prefetch = None if outputs else first.start_model(thread_items)
    moved = transition_stored(
        repo,
        ref,
        "in_progress",
        allowed_from={"queued"},
        events=events,
        remove=["tool_outputs"],
        stored=stored,  # applying tool outputs changes a step, not the run item
    )
    if moved is None:
        if prefetch is not None:
            prefetch.abandon()
        current = load_run(repo, ref)
        return current.status if current else "missing"
    if search is not None and not outputs:
        touch(repo, ref.tenant, search.stores)  # a run uses its stores, searching or not: their expiry moves
    started, first.stored_run = moved
    first.run = started
    return _turns(
        repo,
        ref,
        started,
        events,
        search,
        prefetch,
        first if prefetch is not None else None,
        replay=replay,
        stored_run=first.stored_run,
    )


def _turns(
    repo: Repository,
    ref: RunRef,
    started: Run,
    events: RunEventWriter,
    search: file_search.SearchSettings | None,
    prefetch: Prefetch | None = None,
    first: Turn | None = None,
    *,
    replay: Replay | None = None,
    stored_run: StoredDoc | None = None,
) -> str:
    """The run's turns in this invocation: one, and more while the model only searches.
    ``first``: the turn that started ``prefetch`` (it knows what the request offered).
    ``stored_run``: the run item as last read or written (a search round does not change it)."""
    try:
        turn = first or Turn(repo, ref, started, events, search, replay=replay, stored_run=stored_run)
        status = turn.execute(prefetch)
        rounds = 1
        while status == CONTINUE:  # the model searched: it answers (or searches again) next
            if rounds > file_search.MAX_ROUNDS:  # told to answer (tool_choice "none"), it searched anyway
                message = "The model kept searching the files instead of answering."
                failed = fail(repo, ref, "server_error", message, events)
                return failed.status if failed else "failed"
            more = rounds < file_search.MAX_ROUNDS
            turn = Turn(
                repo,
                ref,
                started,
                events,
                search,
                carried=turn.carried,
                search_more=more,
                replay=replay,
                stored_run=stored_run,
            )
            status = turn.execute()
            rounds += 1
        return status
    except ModelError as error:
        detail = error.detail if isinstance(error, Diverged) else error.message
        logger.warning("model call failed", extra={"run_id": ref.run_id, "code": error.code, "error": detail})
        failed = fail(repo, ref, error.code, error.message, events)
        return failed.status if failed else "failed"


def _still_ingesting(search: file_search.SearchSettings, run: Run) -> bool:
    """Whether a new run should wait for its stores' files, as OpenAI's did, within a bound."""
    return search.ingesting() and now() - run.created_at < settings().file_search_wait_seconds


def _apply_tool_outputs(
    repo: Repository, ref: RunRef, outputs: dict[str, str], events: RunEventWriter, replay: Replay | None = None
) -> None:
    """Complete the tool-calls step with the submitted outputs (the claim stored them on the run).

    On a retry, an earlier attempt may have completed the step and died before its event: the
    step is then left as it is, and only its event is sent."""
    steps = repo.list(ref.pk, step_prefix(ref.run_id), limit=100, order="desc").items
    for doc in steps:
        step = RunStep.model_validate(doc)
        if step.type != "tool_calls":
            continue
        if step.status != "in_progress":
            answered = any(call["id"] in outputs for call in doc["step_details"].get("tool_calls", []))
            if replay is not None and answered and not replay.was_logged(ev.STEP_COMPLETED, step.id):
                events.emit(ev.STEP_COMPLETED, doc)
                return
            continue

        def complete(current: dict[str, Any]) -> dict[str, Any] | None:
            if current["status"] != "in_progress":
                return None
            for call in current["step_details"]["tool_calls"]:
                if call["id"] in outputs:
                    call["function"]["output"] = outputs[call["id"]]
            current["status"] = "completed"
            current["completed_at"] = now()
            return current

        updated = repo.mutate(ref.pk, step_sk(ref.run_id, step.id), complete)
        if updated is not None and updated["status"] == "completed":
            events.emit(ev.STEP_COMPLETED, updated)
        return
