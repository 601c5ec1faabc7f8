"""The run state machine's ``RunCode`` task: run the code the model wrote in its last turn.

A turn whose model called ``python`` ends with status ``code`` and leaves its tool-calls step
in progress; the state machine then calls :func:`run_code_step`, which runs each pending call
in the thread's session (started or replaced as needed, with the run's files in
``/mnt/data``), records the outputs on the step, streams them, and returns ``continue`` (the
next turn reads them), ``requires_action`` (the same step also called the client's
functions), or how the run ended. A long execution holds this small function, never the
agent step.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from aws_lambda_powertools import Logger

from ..blobs import BlobStore, file_key
from ..ids import now
from ..repository import THREAD_SK, Repository, StoredDoc, step_sk
from ..services.lifecycle import RunRef, fail, park_for_tool_outputs
from ..services.run_events import RunEventWriter
from ..types import Message, Run, RunStep
from ..types import events as ev
from . import sessions
from .files import available_files, model_path, store_output
from .sandbox import Execution, Limits, Sandbox, SandboxUnavailable, SessionGone, limits
from .sessions import Session

logger = Logger()
RESULTS_ATTRIBUTE = "code_results"
CONTINUE = "continue"
# Kept from the function's time for starting a session, files and recording (per call).
RESERVED_SECONDS = 60


SESSION_ENDED_NOTE = (
    "Note: the earlier Python session had ended, so the variables and imports of earlier calls are gone "
    "(the files were put back in /mnt/data)."
)


def run_code_step(
    repo: Repository,
    sandbox: Sandbox,
    blobs: BlobStore,
    tenant: str,
    thread_id: str,
    run_id: str,
    event_seq: int = 0,
    *,
    seconds_left: float = 900,
) -> dict[str, Any]:
    """Run the pending code calls of the run's open step; returns the status and last event number.

    ``seconds_left``: the function's remaining time. Calls share it, so that a turn of many
    long calls ends each within it rather than the function timing out (which fails the run)."""
    ref = RunRef(tenant, thread_id, run_id)
    events = RunEventWriter(repo, tenant, run_id, next_seq=event_seq + 1 if event_seq > 0 else None)
    try:
        status = _run(repo, sandbox, blobs, ref, events, time.monotonic() + seconds_left - RESERVED_SECONDS)
    finally:
        events.close()
    return {"status": status, "event_seq": events.known_last_seq}


def _run(
    repo: Repository, sandbox: Sandbox, blobs: BlobStore, ref: RunRef, events: RunEventWriter, deadline: float
) -> str:
    items = repo.partition_stored(ref.pk)
    stored = items.get(ref.sk)
    if stored is None:
        return "missing"
    run = Run.model_validate(stored.doc)
    if run.status != "in_progress":
        return run.status
    open_step = _open_step(items, run.id)
    if open_step is None:
        return CONTINUE  # a retry after the step was completed: the next turn goes on
    step = RunStep.model_validate(open_step.doc)
    results: dict[str, Any] = json.loads(str(open_step.attributes.get(RESULTS_ATTRIBUTE) or "{}"))
    calls = step.tool_calls()
    pending = [(i, c) for i, c in enumerate(calls) if c["type"] == "code_interpreter" and c["id"] not in results]
    if pending:
        messages = [Message.model_validate(s.doc) for s in items.values() if s.doc.get("object") == "thread.message"]
        thread = items.get(THREAD_SK)
        paths = available_files(repo, ref.tenant, run.assistant_id, thread.doc if thread else None, messages)
        runner = _Runner(repo, sandbox, blobs, ref, paths, deadline)
        try:
            for index, call in pending:
                status = repo.get_attribute(ref.pk, ref.sk, "status")
                if status != "in_progress":
                    return str(status or "missing")
                results[call["id"]] = _record(
                    repo, blobs, ref, step, index, call, runner.execute(call), events, results
                )
        except SandboxUnavailable as error:
            logger.warning("code interpreter unavailable", extra={"run_id": ref.run_id, "error": error.message})
            failed = fail(repo, ref, error.code, error.message, events)
            return failed.status if failed else "failed"
    current = repo.get_doc(ref.pk, step_sk(ref.run_id, step.id)) or step.model_dump(mode="json")
    recorded = RunStep.model_validate(current).tool_calls()
    if any(c["type"] == "function" and c["function"].get("output") is None for c in recorded):
        return park_for_tool_outputs(repo, ref, recorded, events)  # the turn counted its usage
    return _complete(repo, ref, step.id, events)


def _open_step(items: dict[str, StoredDoc], run_id: str) -> StoredDoc | None:
    steps = [
        s
        for s in items.values()
        if s.doc.get("object") == "thread.run.step"
        and s.doc.get("run_id") == run_id
        and s.doc.get("type") == "tool_calls"
        and s.doc.get("status") == "in_progress"
    ]
    return max(steps, key=lambda s: (s.doc["created_at"], s.doc["id"]), default=None)


class _Runner:
    """Runs calls in the thread's session, replacing it when it ended, with the files in place."""

    def __init__(
        self, repo: Repository, sandbox: Sandbox, blobs: BlobStore, ref: RunRef, paths: dict[str, str], deadline: float
    ) -> None:
        self.repo, self.sandbox, self.blobs, self.ref, self.paths = repo, sandbox, blobs, ref, paths
        self.deadline = deadline
        self.limits: Limits = limits()
        self.session: Session | None = None
        self.replaced = False  # the thread's earlier session ended: the model is told, once

    def execute(self, call: dict[str, Any]) -> tuple[Execution, bool]:
        """Run one call; its execution, and whether the model must be told that the session's
        earlier state is gone. A session that ended before the code ran is replaced and the code
        run there; one that ended while it ran is replaced for the next call, never re-run."""
        if self.session is None:
            self.session, self.replaced = sessions.open_session(
                self.repo, self.sandbox, self.ref.tenant, self.ref.thread_id
            )
        told, self.replaced = self.replaced, False
        for attempt in range(2):
            try:
                self._stage()
                seconds = min(self.limits.call_seconds, self.deadline - time.monotonic())
                if seconds < 1:
                    return Execution(
                        logs="Not run: this turn's calls used all the time they are given.", error=True
                    ), told
                execution = self.sandbox.execute(
                    self.session.id, call["code_interpreter"]["input"], replace(self.limits, call_seconds=seconds)
                )
                break
            except SessionGone:  # ended between calls (its lifetime, a stop): the code did not run
                self.session = sessions.replace(
                    self.repo, self.sandbox, self.ref.tenant, self.ref.thread_id, self.session
                )
                told = True
                if attempt == 1:
                    raise SandboxUnavailable(
                        "server_error", "The code interpreter session ended as soon as it started."
                    ) from None
        if execution.session_lost:  # its logs say the state is gone: the next call starts afresh
            self.session = None
            sessions.forget(self.repo, self.ref.tenant, self.ref.thread_id)
        return execution, told

    def _stage(self) -> None:
        assert self.session is not None
        missing = {file_id: path for file_id, path in self.paths.items() if file_id not in self.session.files}
        if not missing:
            return
        for file_id, path in missing.items():  # one in memory at a time
            self.sandbox.write_file(self.session.id, path, self.blobs.get(file_key(self.ref.tenant, file_id)))
            self.session.files[file_id] = path
        sessions.save(self.repo, self.sandbox, self.ref.tenant, self.ref.thread_id, self.session)


def _record(
    repo: Repository,
    blobs: BlobStore,
    ref: RunRef,
    step: RunStep,
    index: int,
    call: dict[str, Any],
    outcome: tuple[Execution, bool],
    events: RunEventWriter,
    results: dict[str, Any],
) -> dict[str, Any]:
    """Keep the call's files, put its outputs on the step and stream them; what the model reads."""
    started = time.monotonic()
    execution, session_ended = outcome
    notes = [SESSION_ENDED_NOTE] if session_ended else []
    if repo.get_attribute(ref.pk, ref.sk, "status") != "in_progress":  # cancelled meanwhile: keep nothing
        return {"notes": notes, "files": [], "images": []}
    files: list[dict[str, str]] = []
    images: list[str] = []
    figures = [f for f in execution.files if f.figure]
    for output in execution.files:
        if not output.data:
            notes.append(f"{model_path(output.path)} is empty and was not kept.")
            continue
        file = store_output(repo, blobs, ref.tenant, output)
        if output.figure:
            images.append(file.id)
            continue
        files.append({"path": model_path(output.path), "file_id": file.id})
        if output.image_type and not figures:
            images.append(file.id)
    if files:
        notes.append("Files written: " + ", ".join(f"{f['path']} (link: sandbox:{f['path']})" for f in files) + ".")
    if images:
        notes.append(f"{len(images)} image(s) shown to the user.")
    if execution.too_large:
        shown = [model_path(p) if not p.startswith("figures/") else "a chart" for p in execution.too_large]
        notes.append("Not kept (over the size or count limit, or unreadable): " + ", ".join(shown) + ".")
    outputs: list[dict[str, Any]] = []
    if execution.logs or not images:
        outputs.append({"type": "logs", "logs": execution.logs})
    outputs += [{"type": "image", "image": {"file_id": file_id}} for file_id in images]
    result = {"notes": notes, "files": files, "images": images}  # the logs are the step's already

    def put_outputs(current: dict[str, Any]) -> dict[str, Any] | None:
        if current["status"] != "in_progress":
            return None
        for recorded in current["step_details"]["tool_calls"]:
            if recorded["id"] == call["id"]:
                recorded["code_interpreter"]["outputs"] = outputs
        return current

    everything = json.dumps({**results, call["id"]: result})
    updated = repo.mutate(ref.pk, step_sk(ref.run_id, step.id), put_outputs, code_results=everything)
    if updated is not None and updated["status"] == "in_progress":
        fragment = {
            "index": index,
            "type": "code_interpreter",
            "code_interpreter": {"outputs": [{"index": i, **o} for i, o in enumerate(outputs)]},
        }
        events.emit(
            ev.STEP_DELTA,
            {
                "id": step.id,
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}},
            },
        )
    logger.info(
        "code_interpreter",
        extra={
            "run_id": ref.run_id,
            "error": execution.error,
            "timed_out": execution.timed_out,
            "files": len(files),
            "images": len(images),
            "record_ms": round((time.monotonic() - started) * 1000),
        },
    )
    return result


def _complete(repo: Repository, ref: RunRef, step_id: str, events: RunEventWriter) -> str:
    def complete(current: dict[str, Any]) -> dict[str, Any] | None:
        if current["status"] != "in_progress":
            return None
        return {**current, "status": "completed", "completed_at": now()}

    done = repo.mutate(ref.pk, step_sk(ref.run_id, step_id), complete)
    if done is not None and done.get("status") == "completed":
        events.emit(ev.STEP_COMPLETED, done)
    return CONTINUE
