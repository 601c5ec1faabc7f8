"""Runs and run steps as the API sees them: create, read, update, cancel, submit tool outputs.

The model turns happen in the agent step (:mod:`assistants_core.agent`), driven by the state
machine; this module starts, resumes and stops that machine and writes the events a stream
shows before the machine takes over.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from ..config import settings
from ..errors import APIError, ConflictError, InvalidRequestError, NotFoundError, too_large
from ..ids import new_id, now
from ..orchestrator import RunOrchestrator
from ..repository import (
    RUN_PREFIX,
    THREAD_SK,
    ConcurrentModification,
    ItemTooLarge,
    Repository,
    step_prefix,
    step_sk,
    thread_pk,
)
from ..types import (
    Assistant,
    ListPage,
    Message,
    Run,
    RunCreateParams,
    RunStep,
    RunUpdateParams,
    SubmitToolOutputsParams,
    Thread,
    ThreadAndRunCreateParams,
    ThreadCreateParams,
)
from ..types.events import THREAD_CREATED, run_event
from ..types.run_step import without_search_content
from . import rate_limits
from .assistants import assistant_for_run, forget_assistant
from .lifecycle import RunRef, close_open_steps, fail, load_run, transition
from .messages import build_message, message_sk
from .models import require_available
from .pagination import ListParams, to_list_page
from .rate_limits import RUN_KEY_ATTRIBUTE, Caller
from .run_events import RunEventWriter
from .thread_state import active_run, require_thread
from .threads import create_thread, delete_thread
from .tool_resources import check as check_tool_resources
from .tool_resources import check_attachments, index_attachments

logger = Logger()


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [_dump(item) for item in value]
    return value


def _new_run(thread_id: str, assistant: Assistant, params: RunCreateParams | ThreadAndRunCreateParams) -> Run:
    created_at = now()
    instructions = params.instructions if params.instructions is not None else (assistant.instructions or "")
    additional = getattr(params, "additional_instructions", None)
    if additional:
        instructions = f"{instructions}\n\n{additional}" if instructions else additional
    return Run(
        id=new_id("run"),
        created_at=created_at,
        thread_id=thread_id,
        assistant_id=assistant.id,
        status="queued",
        expires_at=created_at + settings().run_expiry_seconds,
        model=params.model or assistant.model,
        instructions=instructions,
        tools=_dump(params.tools) if params.tools is not None else assistant.tools,
        metadata=params.metadata or {},
        temperature=params.temperature if params.temperature is not None else assistant.temperature,
        top_p=params.top_p if params.top_p is not None else assistant.top_p,
        max_prompt_tokens=params.max_prompt_tokens,
        max_completion_tokens=params.max_completion_tokens,
        truncation_strategy=_dump(params.truncation_strategy) or {"type": "auto", "last_messages": None},
        response_format=_dump(params.response_format)
        if params.response_format is not None
        else assistant.response_format,
        tool_choice=_dump(params.tool_choice) if params.tool_choice is not None else "auto",
        parallel_tool_calls=params.parallel_tool_calls if params.parallel_tool_calls is not None else True,
        reasoning_effort=params.reasoning_effort or assistant.reasoning_effort,
    )


def create_run(
    repo: Repository,
    orchestrator: RunOrchestrator,
    tenant: str,
    thread_id: str,
    params: RunCreateParams,
    *,
    created_thread: Thread | None = None,
    caller: Caller | None = None,
) -> Run:
    """Lock the thread for a new run, log its first events and start its state machine.

    The lock, the run, any ``additional_messages`` and the run's first events are written in
    one transaction, so a second run or a new message cannot slip in while this one is active,
    and a stream sees the run from its first event. With a limit on runs in progress, the
    transaction also takes one of the ``caller``'s slots: a run over the limit creates nothing.
    """
    assistant, assistant_check = assistant_for_run(repo, tenant, params.assistant_id)
    if params.model:
        require_available(params.model)
    if params.additional_messages:
        check_attachments(repo, tenant, params.additional_messages, param="additional_messages")
    extra = [build_message(thread_id, m) for m in params.additional_messages or []]
    pk = thread_pk(tenant, thread_id)
    run = _new_run(thread_id, assistant, params)  # any size: the repository keeps large docs in S3
    freed_stale_slots = False
    try:
        for attempt in range(3):
            run_doc = run.model_dump(mode="json")
            first: list[tuple[str, dict[str, Any]]] = []
            if created_thread is not None:
                first.append((THREAD_CREATED, created_thread.model_dump(mode="json")))
            first += [(run_event("created"), run_doc), (run_event("queued"), run_doc)]
            events = RunEventWriter(repo, tenant, run.id, next_seq=1)
            slot = rate_limits.op_take_run_slot(repo, caller, thread_id, run.id)
            # The run names the key whose slot it holds, for whoever ends it.
            holder: dict[str, Any] = {RUN_KEY_ATTRIBUTE: caller.key_id} if slot and caller else {}
            ops = [
                *([slot] if slot else []),  # first: its cancellation reason is at index 0
                repo.op_update(
                    pk,
                    THREAD_SK,
                    "SET active_run_id = :run",
                    "attribute_exists(PK) AND attribute_not_exists(active_run_id)",
                    {":run": run.id},
                ),
                repo.op_put(pk, RUN_PREFIX + run.id, run_doc, **holder),
                *[repo.op_put(pk, message_sk(m.id), m.model_dump(mode="json")) for m in extra],
                assistant_check,  # last: its cancellation reason is at index len(ops) - 1
            ]
            try:
                events.emit_many(first, with_ops=ops)
                break
            except ConcurrentModification as error:
                if rate_limits.failed_at(error, len(ops) - 1):  # the run copied a stale assistant
                    forget_assistant(tenant, params.assistant_id)
                    assistant, assistant_check = assistant_for_run(repo, tenant, params.assistant_id)
                    run = _new_run(thread_id, assistant, params)
                    continue
                if slot and caller and rate_limits.failed_at(error, 0):
                    if not freed_stale_slots and rate_limits.free_stale_run_slots(repo, caller):
                        freed_stale_slots = True
                        continue  # a slot was held by a run that had ended: try again once
                    raise rate_limits.runs_limit_error(caller) from None
                active = active_run(repo, tenant, thread_id)
                if active:
                    raise ConflictError(f"Thread {thread_id} already has an active run {active}.") from None
                if attempt == 2:
                    raise
                # The thread's run ended between the write and the read: it is free now.
        else:  # every attempt lost a race (the last to stale slots): never answer for a run not written
            raise ConcurrentModification(f"thread {thread_id}: too many concurrent changes")
    except ItemTooLarge as error:
        raise _run_too_large(error.key, params, extra) from None
    ref = RunRef(tenant, thread_id, run.id)
    try:
        if params.additional_messages:
            # Once the run holds the thread (a rejected run must not touch its store), and before
            # the run starts: its first turn must find the thread's store with these files.
            index_attachments(repo, None, tenant, thread_id, params.additional_messages)
        orchestrator.start(tenant, thread_id, run.id, event_seq=events.known_last_seq)
    except Exception:
        fail(repo, ref, "server_error", "The run could not be started.", events)
        raise
    return run


def _run_too_large(key: tuple[str, str] | None, params: RunCreateParams, extra: list[Message]) -> InvalidRequestError:
    """Name the param that made the run (or its first events, which carry it, or the item at
    ``key``) too large."""
    for index, message in enumerate(extra):
        if key is not None and key[1] == message_sk(message.id):
            return too_large(f"Additional message {index}", f"additional_messages[{index}].content")
    given = params.model_fields_set
    param = next((p for p in ("additional_instructions", "instructions", "tools") if p in given), None)
    return too_large("The run", param)


def create_thread_and_run(
    repo: Repository,
    orchestrator: RunOrchestrator,
    tenant: str,
    params: ThreadAndRunCreateParams,
    *,
    caller: Caller | None = None,
) -> Run:
    assistant_for_run(repo, tenant, params.assistant_id)  # fail before creating the thread (and cache it)
    if params.model:
        require_available(params.model)
    thread_params = params.thread or ThreadCreateParams()
    resources_param = None
    if params.tool_resources is not None and thread_params.tool_resources is None:
        thread_params = thread_params.model_copy(update={"tool_resources": params.tool_resources})
        resources_param = "tool_resources"  # the top-level ones: errors name them as given
    elif params.tool_resources is not None:
        check_tool_resources(repo, tenant, params.tool_resources)  # never accepted unchecked
    thread = create_thread(repo, tenant, thread_params, param_prefix="thread.", resources_param=resources_param)
    run_params = RunCreateParams.model_validate(
        {
            "assistant_id": params.assistant_id,
            **params.model_dump(
                exclude={"assistant_id", "thread", "tool_resources", "stream"}, exclude_unset=True, by_alias=True
            ),
        }
    )
    try:
        return create_run(repo, orchestrator, tenant, thread.id, run_params, created_thread=thread, caller=caller)
    except APIError:
        delete_thread(repo, tenant, thread.id)  # a rejected request leaves no thread behind
        raise


def get_run(repo: Repository, ref: RunRef) -> Run:
    run = load_run(repo, ref)
    if run is None:
        require_thread(repo, ref.tenant, ref.thread_id)
        raise NotFoundError.for_object("run", ref.run_id, param="run_id")
    return run


def list_runs(repo: Repository, tenant: str, thread_id: str, params: ListParams) -> ListPage[Run]:
    require_thread(repo, tenant, thread_id)
    return to_list_page(repo.list(thread_pk(tenant, thread_id), RUN_PREFIX, **params.query()), Run)


def update_run(repo: Repository, ref: RunRef, params: RunUpdateParams) -> Run:
    changes = params.changes()
    doc = repo.mutate(ref.pk, ref.sk, lambda run: {**run, **changes})
    if doc is None:
        return get_run(repo, ref)  # raises the right 404
    return Run.model_validate(doc)


def cancel_run(repo: Repository, orchestrator: RunOrchestrator, ref: RunRef) -> Run:
    """Set ``cancelling``, stop the execution, close open steps and end in ``cancelled``.

    A failed stop is logged, not raised: the run must still end ``cancelled`` and free its
    thread, and an execution that kept going sees the status within a second and gives up.
    """
    stored = repo.get(ref.pk, ref.sk)
    if stored is None:
        get_run(repo, ref)
    token = stored.attributes.get("task_token") if stored else None
    events = RunEventWriter(repo, ref.tenant, ref.run_id)
    cancelling = transition(
        repo,
        ref,
        "cancelling",
        allowed_from={"queued", "in_progress", "requires_action"},
        events=events,
        remove=["task_token"],
    )
    if cancelling is None:
        current = get_run(repo, ref)
        raise ConflictError(f"Cannot cancel run with status '{current.status}'.", param="run_id")
    try:
        orchestrator.stop(ref.run_id, str(token) if token else None)
    except Exception:
        logger.exception("could not stop the run's execution; cancelling it anyway", extra={"run_id": ref.run_id})
    close_open_steps(repo, ref, "cancelled", events)
    transition(repo, ref, "cancelled", allowed_from={"cancelling"}, events=events)
    return cancelling


def submit_tool_outputs(
    repo: Repository, orchestrator: RunOrchestrator, ref: RunRef, params: SubmitToolOutputsParams
) -> tuple[Run, int]:
    """Claim the parked run for these outputs and resume it; returns the run and the event
    position a stream should continue from.

    The claim is one conditional write that moves ``requires_action`` to ``queued``, stores
    the outputs and removes the task token, returning the token as it was: exactly one caller
    wins. If the state machine had not stored its token yet, its own conditional write then
    fails and it resumes by itself, so the run continues exactly once either way.
    """
    for _ in range(10):
        stored = repo.get(ref.pk, ref.sk)
        if stored is None:
            get_run(repo, ref)
            raise NotFoundError.for_object("run", ref.run_id, param="run_id")
        run = Run.model_validate(stored.doc)
        if run.status != "requires_action":
            raise ConflictError(f'Runs in status "{run.status}" do not accept tool outputs.', param="run_id")
        outputs = _check_outputs(run, params)
        after_seq = RunEventWriter(repo, ref.tenant, ref.run_id).last_seq
        run.status = "queued"
        run.required_action = None
        try:
            old = repo.save(
                ref.pk,
                ref.sk,
                run.model_dump(mode="json"),
                expected_version=stored.version,
                remove=["task_token"],
                return_old=True,
                tool_outputs=json.dumps(outputs),
            )
        except ConcurrentModification:
            continue
        token = old.get("task_token")
        if token:
            orchestrator.resume(str(token))
        return run, after_seq
    raise ConflictError("The run changed while the tool outputs were submitted; try again.")


def _check_outputs(run: Run, params: SubmitToolOutputsParams) -> dict[str, str]:
    expected = run.required_call_ids()
    given = [output.tool_call_id for output in params.tool_outputs]
    seen: set[str] = set()
    for index, call_id in enumerate(given):
        if call_id in seen:
            raise InvalidRequestError(
                f"Duplicate tool output for tool call '{call_id}'.", param=f"tool_outputs[{index}].tool_call_id"
            )
        seen.add(call_id)
        if call_id not in expected:
            raise InvalidRequestError(
                f"No tool call found with id '{call_id}' in the run's required action.",
                param=f"tool_outputs[{index}].tool_call_id",
            )
    missing = [call_id for call_id in expected if call_id not in seen]
    if missing:
        raise InvalidRequestError(f"Expected tool outputs for call_ids {expected}, got {given}.", param="tool_outputs")
    return {output.tool_call_id: output.output for output in params.tool_outputs}


def _shown(step: RunStep, search_content: bool) -> RunStep:
    """A step as the API shows it: file_search results carry their ``content`` only when
    ``include[]`` asked for it."""
    if search_content:
        return step
    return step.model_copy(update={"step_details": without_search_content(step.step_details)})


def list_steps(repo: Repository, ref: RunRef, params: ListParams, *, search_content: bool = False) -> ListPage[RunStep]:
    get_run(repo, ref)
    page = to_list_page(repo.list(ref.pk, step_prefix(ref.run_id), **params.query()), RunStep)
    page.data = [_shown(step, search_content) for step in page.data]
    return page


def get_step(repo: Repository, ref: RunRef, step_id: str, *, search_content: bool = False) -> RunStep:
    doc = repo.get_doc(ref.pk, step_sk(ref.run_id, step_id))
    if doc is None:
        get_run(repo, ref)
        raise NotFoundError.for_object("run step", step_id, param="step_id")
    return _shown(RunStep.model_validate(doc), search_content)
