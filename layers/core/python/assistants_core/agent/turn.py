"""One model turn: call the model, stream what it says into steps, messages and events, and
leave the run completed, incomplete, failed, waiting for tool outputs, or going on (after a
search, or once the service has run the model's code).

:mod:`.step` runs the turns of one state machine task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger

from .. import tokens
from ..code_interpreter import files as code_files
from ..code_interpreter import tool as code_tool
from ..ids import new_id, now
from ..repository import (
    MESSAGE_PREFIX,
    ConcurrentModification,
    Repository,
    StoredDoc,
    step_sk,
)
from ..services.lifecycle import RunRef, add_usage, fail, load_run, park_for_tool_outputs, transition
from ..services.run_events import RunEventWriter
from ..types import Message, Run, RunStep, Usage
from ..types import events as ev
from . import citations, file_search
from .model import (
    Chunk,
    Finish,
    ModelError,
    ModelRequest,
    Prefetch,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
    stream_completion,
)
from .replay import Diverged, Replay
from .request import plan_request

logger = Logger()
CANCEL_CHECK_SECONDS = 1.0
# What a turn that ran file_search and nothing else returns: the run goes on with another turn.
CONTINUE = "continue"
# What a turn whose model called python returns: the state machine runs the code (RunCode), then
# calls the next turn with ``resume``.
CODE = "code"
# What the first turn returns while the run's vector stores still ingest (the state machine
# waits and calls again; see statemachine/run.asl.json).
WAITING = "waiting"


class Turn:
    def __init__(
        self,
        repo: Repository,
        ref: RunRef,
        run: Run,
        events: RunEventWriter,
        search: file_search.SearchSettings | None = None,
        *,
        carried: Usage | None = None,
        search_more: bool = True,
        replay: Replay | None = None,
        stored_run: StoredDoc | None = None,
    ) -> None:
        self.repo = repo
        self.ref = ref
        self.run = run
        # The run item as this invocation last wrote or read it: the turn's end writes on top of
        # it without reading it again (a stale one, changed meanwhile, costs a failed write).
        self.stored_run = stored_run
        self.events = events
        self.search = search
        self.search_more = search_more  # False: the model has searched enough and must answer
        self.replay = replay  # a retried invocation: what earlier attempts streamed (see .replay)
        self.carried = carried or Usage()  # usage of this run's earlier turns in this invocation
        self.message: Message | None = None
        self.message_step: RunStep | None = None
        self.tool_step: RunStep | None = None
        self.text: list[str] = []
        self.said = 0  # characters of text so far
        self.calls: dict[int, dict[str, Any]] = {}
        self.citation_table: citations.CitationTable = {}
        self.citations: citations.CitationStream | None = None
        self.searches_before = 0  # file_search calls of this run's earlier turns
        self.code_paths: dict[str, str] | None = None  # file id -> name in /mnt/data; None: no code tool
        self.code_calls_before = 0  # code_interpreter calls of this run's earlier turns
        self.output_files: dict[str, str] = {}  # /mnt/data path -> file id, of files this run's code wrote
        self.new_images: list[str] = []  # images this run's code made that no message shows yet
        self._last_cancel_check = time.monotonic()

    # ------------------------------------------------------------ the turn

    def start_model(self, thread_items: dict[str, StoredDoc]) -> Prefetch | None:
        request, prompt_tokens = self._request(self.run.usage or Usage(), thread_items)
        if request is None or (request.max_tokens is not None and request.max_tokens <= 0):
            return None  # execute() ends the run incomplete
        return Prefetch(request, prompt_tokens)

    def execute(self, prefetch: Prefetch | None = None) -> str:
        used = (self.run.usage or Usage()) + self.carried
        chunks: Iterable[Chunk]
        if prefetch is not None:
            prompt_tokens, chunks = prefetch.prompt_tokens, prefetch.chunks()
        else:
            request, prompt_tokens = self._request(used)
            if request is None:
                return self._finish_incomplete("max_prompt_tokens", Usage())
            if request.max_tokens is not None and request.max_tokens <= 0:
                return self._finish_incomplete("max_completion_tokens", Usage())
            chunks = stream_completion(request)
        finish: str | None = None
        reported: TokenUsage | None = None
        try:
            for chunk in chunks:
                if isinstance(chunk, TextDelta):
                    self._on_text(chunk.text)
                elif isinstance(chunk, ToolCallDelta):
                    self._on_tool_call(chunk)
                elif isinstance(chunk, Finish):
                    finish = chunk.reason
                elif isinstance(chunk, TokenUsage):
                    reported = chunk
                if self._cancelled():
                    # The cancel closes the message with the text the stream showed, before
                    # thread.run.cancelled; what this turn received after it is not the answer's.
                    self.events.flush()
                    return "cancelled"
            if finish is None:
                raise ModelError("server_error", "The model's response stream ended before the answer was complete.")
        except Diverged:
            self.events.flush()  # the message keeps what was streamed: the run's failure closes it
            raise
        except ModelError:
            self._abandon()
            raise
        usage = self._usage(reported, prompt_tokens)
        if self.calls:
            searches = {i: c for i, c in self._calls_in_order() if c["kind"] == "file_search"}
            if searches and not self._replayed_close(self._tool_step_id()):
                self._run_searches(searches)
            if searches and len(searches) == len(self.calls):
                return self._finish_search_round(usage)
            if any(c["kind"] == "code" for c in self.calls.values()):
                return self._finish_code_round(usage)
            return self._finish_tool_calls(usage)
        if finish == "length":
            self._close_message(incomplete=True, usage=usage)
            return self._finish_incomplete("max_completion_tokens", usage)
        self._close_message(incomplete=False, usage=usage)
        return self._finish("completed", usage)

    def _request(
        self, used: Usage, thread_items: dict[str, StoredDoc] | None = None
    ) -> tuple[ModelRequest | None, int]:
        """The model call for this turn (the thread read now unless the caller has it), and what
        the turn must know of the run so far to read the answer."""
        if thread_items is None:
            thread_items = self.repo.partition_stored(self.ref.pk)
        if self.replay is not None:
            thread_items = self.replay.hide(thread_items, self.run.id)
        plan = plan_request(self.repo, self.ref, self.run, thread_items, used, self.search, self.search_more)
        self.citation_table, self.searches_before = plan.citation_table, plan.searches_before
        self.code_paths, self.code_calls_before = plan.code_paths, plan.code_calls_before
        self.output_files, self.new_images = plan.output_files, plan.new_images
        if self.citation_table or self.output_files:
            self.citations = citations.CitationStream(self.citation_table, self.output_files)
        return plan.request, plan.prompt_tokens

    def _usage(self, reported: TokenUsage | None, prompt_tokens: int) -> Usage:
        if reported is not None:
            prompt, completion = reported.prompt_tokens, reported.completion_tokens
        else:
            spoken = "".join(self.text) + "".join(c["name"] + c["arguments"] for c in self.calls.values())
            prompt, completion = prompt_tokens, tokens.count(self.run.model, spoken)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    # ------------------------------------------------------------ streaming into objects

    def _on_text(self, text: str) -> None:
        if self.tool_step is not None:
            return  # text after tool calls has nowhere to go in the Assistants model
        if self.citations is None:
            self._emit_text(text, [])
            return
        for piece, found in self.citations.feed(text):  # whole citation markers, with annotations
            self._emit_text(piece, found)

    def _emit_text(self, text: str, annotations: list[dict[str, Any]]) -> None:
        self.text.append(text)
        said, self.said = self.said, self.said + len(text)
        if self.message is None and not self._take_message():
            part = {"index": 0, "type": "text", "text": {"value": text, "annotations": annotations}}
            self._open_message(first_text=part)
            return
        assert self.message is not None
        if self.replay is not None:  # only what goes past what an earlier attempt streamed
            rest = self.replay.new_text(self.message.id, said, text)
            if not rest:
                return
            start = said + len(text) - len(rest)
            text, annotations = rest, [a for a in annotations if int(a.get("start_index", 0)) >= start]
        part = {"index": 0, "type": "text", "text": {"value": text, "annotations": annotations}}
        self.events.delta(
            ev.MESSAGE_DELTA, {"id": self.message.id, "object": "thread.message.delta", "delta": {"content": [part]}}
        )

    def _on_tool_call(self, chunk: ToolCallDelta) -> None:
        if self.message is not None and self.message.status == "in_progress":
            self._close_message(incomplete=False, usage=None)
        opening = self.tool_step is None and not self._take_tool_step()
        if self.tool_step is None:
            self.tool_step = self._new_step("tool_calls", {"type": "tool_calls", "tool_calls": []})
        fragment: dict[str, Any]
        if chunk.index not in self.calls:
            streamed = self.replay.call(self.tool_step.id, len(self.calls)) if self.replay else None
            call_id = (streamed.id if streamed else None) or chunk.id or new_id("call")  # the id clients saw
            searching = self.search is not None and chunk.name == file_search.FUNCTION_NAME
            coding = self.code_paths is not None and chunk.name == code_tool.FUNCTION_NAME
            kind = "file_search" if searching else "code" if coding else "function"
            # The SDKs index a step's calls from 0 in order, whatever numbers the provider gives.
            position = len(self.calls)
            self.calls[chunk.index] = {
                "id": call_id,
                "name": chunk.name or "",
                "arguments": chunk.arguments,
                "kind": kind,
                "position": position,
            }
            if searching:  # its arguments are ours to read, not the client's: no deltas of them
                fragment = {"index": position, "id": call_id, "type": "file_search", "file_search": {}}
            elif coding:  # the code streams into the call's input as the model writes it
                code = self.calls[chunk.index]["code"] = code_tool.CodeInput()
                fragment = {
                    "index": position,
                    "id": call_id,
                    "type": "code_interpreter",
                    "code_interpreter": {"input": code.advance(chunk.arguments), "outputs": []},
                }
            else:
                fragment = {
                    "index": position,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": chunk.name or "", "arguments": chunk.arguments, "output": None},
                }
        else:
            call = self.calls[chunk.index]
            position = call["position"]
            if chunk.name and not call["name"]:
                call["name"] = chunk.name
            call["arguments"] += chunk.arguments
            if not chunk.arguments or call["kind"] == "file_search":
                return
            if call["kind"] == "code":
                written = call["code"].advance(call["arguments"])
                if not written:
                    return
                fragment = {"index": position, "type": "code_interpreter", "code_interpreter": {"input": written}}
            else:
                fragment = {"index": position, "type": "function", "function": {"arguments": chunk.arguments}}
        if self.replay is not None:  # only what goes past what an earlier attempt streamed
            fragment = self.replay.fragment(self.tool_step.id, self.calls[chunk.index], fragment)
            if not fragment:
                return
        delta = {
            "id": self.tool_step.id,
            "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}},
        }
        if not opening:
            self.events.delta(ev.STEP_DELTA, delta)
            return
        step_doc = self.tool_step.model_dump(mode="json")
        self.events.emit_many(
            [(ev.STEP_CREATED, step_doc), (ev.STEP_IN_PROGRESS, step_doc), (ev.STEP_DELTA, delta)],
            with_ops=[self.repo.op_put(self.ref.pk, step_sk(self.run.id, self.tool_step.id), step_doc)],
        )

    def _take_message(self) -> bool:
        """A retried turn takes over the message an earlier attempt opened, if there is one."""
        if self.replay is None:
            return False
        step = self.replay.take_step("message_creation")
        if step is None:
            return False
        message_id = step["step_details"]["message_creation"]["message_id"]
        self.message_step = RunStep.model_validate(step)
        self.message = Message.model_validate(self.replay.messages[message_id])
        return True

    def _take_tool_step(self) -> bool:
        """A retried turn takes over the tool-calls step an earlier attempt opened, if there is one."""
        step = self.replay.take_step("tool_calls") if self.replay else None
        if step is None:
            return False
        self.tool_step = RunStep.model_validate(
            {**step, "step_details": {"type": "tool_calls", "tool_calls": []}, "status": "in_progress"}
        )
        return True

    def _replayed_close(self, object_id: str) -> bool:
        """Whether an earlier attempt already closed this message or step (then it stays as it is)."""
        return self.replay is not None and self.replay.closed(object_id)

    def _open_message(self, first_text: dict[str, Any]) -> None:
        """Create the message and its step; their four events and the first delta go in the
        same transaction, because the first token is what the user is waiting for."""
        created_at = now()
        message = Message(
            id=new_id("msg"),
            created_at=created_at,
            thread_id=self.run.thread_id,
            status="in_progress",
            role="assistant",
            content=[],
            assistant_id=self.run.assistant_id,
            run_id=self.run.id,
            attachments=[],
        )
        step = self._new_step(
            "message_creation", {"type": "message_creation", "message_creation": {"message_id": message.id}}
        )
        step_doc, message_doc = step.model_dump(mode="json"), message.model_dump(mode="json")
        first_delta = {"id": message.id, "object": "thread.message.delta", "delta": {"content": [first_text]}}
        self.events.emit_many(
            [
                (ev.STEP_CREATED, step_doc),
                (ev.STEP_IN_PROGRESS, step_doc),
                (ev.MESSAGE_CREATED, message_doc),
                (ev.MESSAGE_IN_PROGRESS, message_doc),
                (ev.MESSAGE_DELTA, first_delta),
            ],
            with_ops=[
                self.repo.op_put(self.ref.pk, step_sk(self.run.id, step.id), step_doc),
                self.repo.op_put(self.ref.pk, MESSAGE_PREFIX + message.id, message_doc),
            ],
        )
        self.message, self.message_step = message, step

    def _new_step(self, kind: str, details: dict[str, Any]) -> RunStep:
        return RunStep(
            id=new_id("step"),
            created_at=now(),
            assistant_id=self.run.assistant_id,
            thread_id=self.run.thread_id,
            run_id=self.run.id,
            type=kind,  # type: ignore[arg-type]
            status="in_progress",
            step_details=details,
        )

    def _flush_citations(self) -> None:
        if self.citations is not None:
            for piece, found in self.citations.flush():
                self._emit_text(piece, found)

    def _content(self) -> list[dict[str, Any]]:
        """The message's text with an annotation on each citation marker and each link to a file
        the code wrote, then the images the code made (text first, as OpenAI's were)."""
        text = "".join(self.text)
        annotations = citations.annotate(text, self.citation_table) + code_files.link_annotations(
            text, self.output_files
        )
        annotations.sort(key=lambda a: int(a["start_index"]))
        return [{"type": "text", "text": {"value": text, "annotations": annotations}}] + self._image_parts()

    def _image_parts(self) -> list[dict[str, Any]]:
        return [{"type": "image_file", "image_file": {"file_id": file_id}} for file_id in self.new_images]

    def _close_message(self, *, incomplete: bool, usage: Usage | None) -> None:
        self._flush_citations()
        if self.message is None or self.message_step is None:
            return
        if self.replay is not None:
            self.replay.check_text(self.message.id, "".join(self.text))
            if self._replayed_close(self.message.id):
                self.message = self.message.model_copy(update={"status": "incomplete" if incomplete else "completed"})
                return
        moment = now()
        message = self.message.model_copy(
            update={
                "content": self._content(),
                "status": "incomplete" if incomplete else "completed",
                "completed_at": None if incomplete else moment,
                "incomplete_at": moment if incomplete else None,
                "incomplete_details": {"reason": "max_tokens"} if incomplete else None,
            }
        )
        self.message = message
        step = self.message_step.model_copy(update={"status": "completed", "completed_at": moment, "usage": usage})
        self.message_step = step
        message_doc, step_doc = message.model_dump(mode="json"), step.model_dump(mode="json")
        if self.new_images:  # the SDK's on_image_file_done sees images in deltas
            parts = [{"index": i, **part} for i, part in enumerate(self._image_parts(), start=1)]
            self.events.delta(
                ev.MESSAGE_DELTA, {"id": message.id, "object": "thread.message.delta", "delta": {"content": parts}}
            )
        closing = [
            (ev.MESSAGE_INCOMPLETE if incomplete else ev.MESSAGE_COMPLETED, message_doc),
            (ev.STEP_COMPLETED, step_doc),
        ]
        # One transaction: both docs (still at the version _open_message wrote), their events and
        # the last waiting deltas. If anything touched them meanwhile (cancel), the careful path.
        try:
            self.events.emit_many(
                closing,
                with_ops=[
                    self.repo.op_save(self.ref.pk, MESSAGE_PREFIX + message.id, message_doc, expected_version=1),
                    self.repo.op_save(self.ref.pk, step_sk(self.run.id, step.id), step_doc, expected_version=1),
                ],
            )
        except ConcurrentModification:
            self._save(MESSAGE_PREFIX + message.id, message_doc)
            self._save(step_sk(self.run.id, step.id), step_doc)
            self.events.emit_many(closing)

    def _save(self, sk: str, doc: dict[str, Any], **attributes: Any) -> None:
        """Write a message or step this turn opened, unless someone closed it meanwhile (cancel)."""
        self.repo.mutate(
            self.ref.pk, sk, lambda current: doc if current.get("status") == "in_progress" else None, **attributes
        )

    # ------------------------------------------------------------ how the turn ends

    def _run_searches(self, searches: dict[int, dict[str, Any]]) -> None:
        """Run the model's file_search calls; each gets its results (and its marker number)."""
        assert self.search is not None
        for number, call in enumerate(searches.values(), start=self.searches_before):
            call["number"] = number
            call["results"] = file_search.run_search(self.repo, self.search, self.run.model, call["arguments"])
            logger.info(
                "file_search",
                extra={
                    "run_id": self.run.id,
                    "queries": file_search.queries_of(call["arguments"]),
                    "results": len(call["results"]),
                },
            )

    def _calls_in_order(self) -> list[tuple[int, dict[str, Any]]]:
        return sorted(self.calls.items(), key=lambda item: int(item[1]["position"]))

    def _recorded_calls(self) -> list[dict[str, Any]]:
        recorded: list[dict[str, Any]] = []
        for _, c in self._calls_in_order():
            if c["kind"] == "file_search":
                recorded.append(file_search.file_search_call(c["id"], self.search, c.get("results", [])))
            elif c["kind"] == "code":
                recorded.append(code_tool.code_call(c["id"], code_tool.code_of(c["arguments"])))
            else:
                recorded.append(
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"], "output": None},
                    }
                )
        return recorded

    def _search_arguments(self) -> str:
        return json.dumps({c["id"]: c["arguments"] for c in self.calls.values() if c["kind"] == "file_search"})

    def _tool_step_id(self) -> str:
        assert self.tool_step is not None
        return self.tool_step.id

    def _check_replayed_calls(self) -> None:
        if self.replay is not None:
            self.replay.check_calls(
                self._tool_step_id(), {c["position"]: c.get("shown", 0) for c in self.calls.values()}
            )

    def _finish_search_round(self, usage: Usage) -> str:
        """Every call was a search: the step completes with its results, and the run goes on."""
        assert self.tool_step is not None
        self._check_replayed_calls()
        if self._replayed_close(self.tool_step.id):  # an earlier attempt completed it
            self.carried = self.carried + usage
            return CONTINUE if not self._cancelled(force=True) else self._current_status()
        step = self.tool_step.model_copy(
            update={
                "step_details": {"type": "tool_calls", "tool_calls": self._recorded_calls()},
                "status": "completed",
                "completed_at": now(),
                "usage": usage,
            }
        )
        doc = step.model_dump(mode="json")
        try:
            self.events.emit_many(
                [(ev.STEP_COMPLETED, doc)],
                with_ops=[
                    self.repo.op_save(
                        self.ref.pk,
                        step_sk(self.run.id, step.id),
                        doc,
                        expected_version=1,
                        search_arguments=self._search_arguments(),
                    )
                ],
            )
        except ConcurrentModification:  # closed meanwhile: the run was cancelled
            return self._current_status()
        self.carried = self.carried + usage
        return CONTINUE if not self._cancelled(force=True) else self._current_status()

    def _finish_code_round(self, usage: Usage) -> str:
        """The model wrote code: the step waits for its outputs, and the state machine runs it."""
        assert self.tool_step is not None
        self._check_replayed_calls()
        if self.replay is not None and (self.replay.current.get(self.tool_step.id) or {}).get("usage"):
            return CODE if not self._cancelled(force=True) else self._current_status()  # recorded, and counted
        step = self.tool_step.model_copy(
            update={"step_details": {"type": "tool_calls", "tool_calls": self._recorded_calls()}, "usage": usage}
        )
        self._save(
            step_sk(self.run.id, step.id), step.model_dump(mode="json"), search_arguments=self._search_arguments()
        )
        add_usage(self.repo, self.ref, self.carried + usage)
        if self.code_calls_before >= code_tool.MAX_CALLS:  # told to answer (tool_choice "none"), it wrote code anyway
            message = "The model kept running code instead of answering."
            failed = fail(self.repo, self.ref, "server_error", message, self.events)
            return failed.status if failed else "failed"
        return CODE if not self._cancelled(force=True) else self._current_status()

    def _finish_tool_calls(self, usage: Usage) -> str:
        assert self.tool_step is not None
        self._check_replayed_calls()
        calls = self._recorded_calls()
        step = self.tool_step.model_copy(
            update={"step_details": {"type": "tool_calls", "tool_calls": calls}, "usage": usage}
        )
        self._save(
            step_sk(self.run.id, step.id), step.model_dump(mode="json"), search_arguments=self._search_arguments()
        )
        return park_for_tool_outputs(self.repo, self.ref, calls, self.events, self.carried + usage, self.stored_run)

    def _finish_incomplete(self, reason: str, usage: Usage) -> str:
        spent = self.carried + usage

        def explain(run: Run) -> None:
            run.incomplete_details = {"reason": reason}
            run.usage = (run.usage or Usage()) + spent

        ended = transition(
            self.repo,
            self.ref,
            "incomplete",
            allowed_from={"in_progress"},
            events=self.events,
            change=explain,
            stored=self.stored_run,
        )
        return ended.status if ended else self._current_status()

    def _finish(self, status: str, usage: Usage) -> str:
        spent = self.carried + usage

        def account(run: Run) -> None:
            run.usage = (run.usage or Usage()) + spent

        ended = transition(
            self.repo,
            self.ref,
            status,
            allowed_from={"in_progress"},
            events=self.events,
            change=account,
            stored=self.stored_run,
        )
        return ended.status if ended else self._current_status()

    def _current_status(self) -> str:
        run = load_run(self.repo, self.ref)
        return run.status if run else "missing"

    def _cancelled(self, *, force: bool = False) -> bool:
        if not force and time.monotonic() - self._last_cancel_check < CANCEL_CHECK_SECONDS:
            return False
        self._last_cancel_check = time.monotonic()
        return self.repo.get_attribute(self.ref.pk, self.ref.sk, "status") != "in_progress"

    def _abandon(self) -> None:
        """Keep what the model said so far as an incomplete message when the turn fails."""
        self.events.flush()
        if self.message is None or self.message.status != "in_progress":
            return
        moment = now()
        message = self.message.model_copy(
            update={
                "content": self._content(),
                "status": "incomplete",
                "incomplete_at": moment,
                "incomplete_details": {"reason": "run_failed"},
            }
        )
        self._save(MESSAGE_PREFIX + message.id, message.model_dump(mode="json"))
        self.message = message
        self.events.emit(ev.MESSAGE_INCOMPLETE, message)
