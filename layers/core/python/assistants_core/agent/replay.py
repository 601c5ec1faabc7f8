"""A turn run again after its invocation died: Step Functions retries a crashed or timed-out
agent step with the same input, and what the earlier attempt streamed must not come twice.

The retry gets the same ``event_seq``, so every event after it in the run's log came from an
earlier attempt of this task (or from another writer, such as a cancel, which the run's status
shows). :class:`Replay` reads those events once, and the turn runs again from the same state:

- steps (and their messages) that earlier attempts created are hidden from the model request
  until the new attempt reaches them, so it asks the model what the first attempt asked;
- when it reaches them, it takes them over in order (the same ids, no second write, no second
  ``created`` event), and a tool call keeps the id that was streamed;
- of the text and arguments the model produces, only what goes past what was streamed is
  streamed; a message or step that was already closed is not closed again.

If the model now says something else than was streamed (a model is not deterministic), clients
would see two answers: :class:`Diverged` is raised and the run fails, its message closed with
the text that was streamed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..repository import MESSAGE_PREFIX, Repository, StoredDoc, run_log_pk, step_sk
from ..types import events as ev
from .model import ModelError

INTERRUPTED = "The run was interrupted and could not be resumed: the model's answer differed from what was streamed."
CLOSING_EVENTS = (ev.MESSAGE_COMPLETED, ev.MESSAGE_INCOMPLETE, ev.STEP_COMPLETED)


class Diverged(ModelError):
    """The retried turn's model output differs from what the earlier attempt streamed."""

    def __init__(self, detail: str) -> None:
        super().__init__("server_error", INTERRUPTED)
        self.detail = detail


@dataclass
class StreamedCall:
    """A tool call as the log streamed it: its id and kind, and its arguments (or code) so far."""

    id: str | None = None
    type: str | None = None
    name: str | None = None
    text: str = ""


@dataclass
class Replay:
    last_seq: int  # the log's end: where the retry goes on writing
    logged: set[tuple[str, str]] = field(default_factory=set)  # (event name, object id)
    steps: list[dict[str, Any]] = field(default_factory=list)  # steps created after event_seq, in order
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> doc when created
    text: dict[str, str] = field(default_factory=dict)  # message id -> its streamed text
    calls: dict[str, dict[int, StreamedCall]] = field(default_factory=dict)  # step id -> position -> call
    current: dict[str, dict[str, Any]] = field(default_factory=dict)  # step id -> its doc now
    taken: set[str] = field(default_factory=set)  # steps the new attempt took over

    @classmethod
    def load(cls, repo: Repository, tenant: str, run_id: str, after_seq: int) -> Replay:
        """What the log holds after ``after_seq`` (the input the attempts share)."""
        replay = cls(last_seq=after_seq)
        pk = run_log_pk(tenant, run_id)
        while True:
            page = repo.read_events(pk, replay.last_seq)
            for seq, name, data in page.events:
                replay.last_seq = seq
                replay._record(name, json.loads(data))
            if not page.has_more or not page.events:
                return replay

    def _record(self, name: str, data: dict[str, Any]) -> None:
        object_id = str(data.get("id", ""))
        self.logged.add((name, object_id))
        if name == ev.STEP_CREATED:
            self.steps.append(data)
        elif name == ev.MESSAGE_CREATED:
            self.messages[object_id] = data
        elif name == ev.MESSAGE_DELTA:
            parts = data["delta"].get("content") or []
            said = "".join(p["text"]["value"] for p in parts if p.get("type") == "text")
            self.text[object_id] = self.text.get(object_id, "") + said
        elif name == ev.STEP_DELTA:
            for fragment in data["delta"].get("step_details", {}).get("tool_calls") or []:
                call = self.calls.setdefault(object_id, {}).setdefault(int(fragment["index"]), StreamedCall())
                call.id = fragment.get("id", call.id)
                call.type = fragment.get("type", call.type)
                kind = fragment.get(call.type or "") or {}
                call.name = kind.get("name") or call.name
                call.text += kind.get("arguments") or kind.get("input") or ""

    def observe(self, thread_items: dict[str, StoredDoc], run_id: str) -> None:
        """Note the current state of the steps earlier attempts created (read with the run)."""
        for doc in self.steps:
            stored = thread_items.get(step_sk(run_id, doc["id"]))
            if stored is not None:
                self.current[doc["id"]] = stored.doc

    def was_logged(self, name: str, object_id: str) -> bool:
        return (name, object_id) in self.logged

    def closed(self, object_id: str) -> bool:
        return any((name, object_id) in self.logged for name in CLOSING_EVENTS)

    def hide(self, thread_items: dict[str, StoredDoc], run_id: str) -> dict[str, StoredDoc]:
        """The thread as the first attempt read it: without what earlier attempts created and
        this one has not reached yet."""
        hidden: set[str] = set()
        for doc in self.steps:
            if doc["id"] in self.taken:
                continue
            hidden.add(step_sk(run_id, doc["id"]))
            if doc["type"] == "message_creation":
                hidden.add(MESSAGE_PREFIX + doc["step_details"]["message_creation"]["message_id"])
        return {sk: item for sk, item in thread_items.items() if sk not in hidden}

    def take_step(self, kind: str) -> dict[str, Any] | None:
        """The next step an earlier attempt created, which the new one now creates again (None:
        none left, the step is new)."""
        for doc in self.steps:
            if doc["id"] in self.taken:
                continue
            if doc["type"] != kind:
                raise Diverged(f"a {kind} step where a {doc['type']} step was streamed")
            self.taken.add(doc["id"])
            return self.current.get(doc["id"], doc)
        return None

    def new_text(self, message_id: str, said: int, piece: str) -> str:
        """What of ``piece`` (the message's text from character ``said`` on) was not streamed."""
        return _past(self.text.get(message_id, ""), said, piece, closed=self.closed(message_id))

    def check_text(self, message_id: str, whole: str) -> None:
        """At the message's end: it holds all that was streamed of it."""
        if not whole.startswith(self.text.get(message_id, "")):
            raise Diverged("the answer ended before what was streamed of it")

    def call(self, step_id: str, position: int) -> StreamedCall | None:
        return self.calls.get(step_id, {}).get(position)

    def fragment(self, step_id: str, call: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
        """A retried turn's fragment of a tool call, less what was streamed of it ({}: all of it
        was). ``call`` is the turn's record of the call: its ``shown`` counts the characters of
        arguments (or code) the turn has had so far."""
        kind, position = fragment["type"], int(call["position"])
        streamed = self.call(step_id, position)
        if streamed is not None and (streamed.type != kind or (streamed.name or call["name"]) != call["name"]):
            raise Diverged("a tool call differs from the one that was streamed")
        if streamed is None and self.closed(step_id):
            raise Diverged("a tool call more than the closed step streamed")
        if kind == "file_search":  # nothing streams of it but its first fragment
            return {} if streamed is not None else fragment
        key = "arguments" if kind == "function" else "input"
        piece = fragment[kind].get(key) or ""
        said = int(call.get("shown", 0))
        call["shown"] = said + len(piece)
        rest = _past(streamed.text if streamed else "", said, piece, closed=self.closed(step_id))
        if streamed is None:
            return {**fragment, kind: {**fragment[kind], key: rest}}
        return {"index": position, "type": kind, kind: {key: rest}} if rest else {}

    def check_calls(self, step_id: str, shown: dict[int, int]) -> None:
        """At the step's end: each streamed call is there, with all that was streamed of it
        (``shown``: characters of arguments or code each call has by position)."""
        for position, streamed in self.calls.get(step_id, {}).items():
            if shown.get(position, -1) < len(streamed.text):
                raise Diverged("a tool call ended before what was streamed of it")


def _past(streamed: str, said: int, piece: str, *, closed: bool) -> str:
    overlap = streamed[said : said + len(piece)]
    if not piece.startswith(overlap):
        raise Diverged("the model's output differs from what was streamed")
    rest = piece[len(overlap) :]
    if rest and closed:
        raise Diverged("the model's output goes on past an object that was closed")
    return rest
