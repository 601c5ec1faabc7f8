"""file_search inside runs, end to end: the official SDK and raw SSE against the local stack.

The fake model plays a model that uses the search tool it is offered: it calls ``file_search``,
reads the passages it is given, and answers with the citation marker of the passage that holds
the fact (read from the request it answers, never hard-coded). Uploaded files go through the
real ingestion path (S3, the ingest state machine, the local embedder, the S3 Vectors emulator).
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, override

import httpx
import openai
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads import Message, Text, TextDelta
from openai.types.beta.threads.runs import RunStep, ToolCall

from tests.harness.fake_llm import FakeLLM, Turn, text, tool_calls
from tests.harness.openapi_spec import validate_object, wire
from tests.harness.retrieval import DEADLINE, executions, settled_store, upload, wait_until
from tests.harness.scenario import TERMINAL, WEATHER_TOOL, assert_valid_stream, fake_name, sent, wait_for
from tests.harness.sse import SSEStream, post_sse

CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
DEFAULT_RANKER = "default_2024_08_21"
# A citation marker as the model is shown it: 【<call>:<result>†<file name>】
MARKER = re.compile(r"【(\d+):(\d+)†([^】\n]+)】")

FACT = "liquid gallium at 412 kelvin"
REACTOR = (
    "# The Zorblax reactor\n\n"
    f"The Zorblax reactor of the Quendel station is cooled by {FACT}. "
    "Its core was commissioned in 2091 by the engineer Ilse Varrow.\n"
).encode()
PUMPS = (
    b"# Zorblax pumps\n\n"
    b"The Zorblax reactor coolant loop has three pumps; each moves 30 litres a minute through the heat "
    b"exchanger, and a spare pump waits in the Quendel store room.\n"
)
GARDEN = (
    b"# Greenhouse notes\n\n"
    b"Tomatoes on the east bench want watering twice a day in summer; basil prefers the shade of the "
    b"north wall and dislikes cold draughts.\n"
)
QUESTION = "What cools the Zorblax reactor?"
# A query that every ranking puts the reactor file first for (vectors and keywords agree).
QUERY = {"queries": ["liquid gallium Zorblax reactor"]}
QUERY_JSON = '{"queries": ["liquid gallium Zorblax reactor"]}'  # as the fake model writes it (json.dumps)
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


# ------------------------------------------------------------------ helpers


def completes(client: OpenAI, thread_id: str, run_id: str, timeout: float = 30) -> Any:
    """The run, once it completed (it must not fail)."""
    run = wait_for(client, thread_id, run_id, {"completed", "failed", "incomplete", "cancelled", "expired"}, timeout)
    assert run.status == "completed", (run.status, run.last_error)
    return run


def ready_store(client: OpenAI, file_ids: list[str]) -> str:
    store = client.vector_stores.create(file_ids=file_ids)
    done = settled_store(client, store.id)
    assert (done.file_counts.completed, done.file_counts.failed) == (len(file_ids), 0), done.file_counts
    return store.id


@dataclass
class Library:
    """One tenant's uploaded documents in a ready store, shared by the tests that only read it."""

    client: OpenAI
    http: httpx.Client
    store_id: str
    files: dict[str, str]  # file name -> file id


@pytest.fixture(scope="module")
def library(stack_url: str) -> Iterator[Library]:
    key = f"sk-fs-{uuid.uuid4().hex}"
    client = OpenAI(base_url=f"{stack_url}/v1", api_key=key, max_retries=0, timeout=60)
    documents = {"reactor.md": REACTOR, "pumps.md": PUMPS, "garden.md": GARDEN}
    files = {name: upload(client, name, data) for name, data in documents.items()}
    store_id = ready_store(client, list(files.values()))
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=stack_url, headers=headers, timeout=60) as http:
        yield Library(client=client, http=http, store_id=store_id, files=files)


Reply = Turn | Callable[[dict[str, Any]], Turn]


def converse(fake: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch, *replies: Reply) -> None:
    """Script the model's turns in order; a callable reply is made from the request it answers
    (the model reads what it was given, as a real one does). Other models are left alone."""
    name = fake_name(model)
    queue: deque[Reply] = deque(replies)
    scripted = fake._next_turn

    def next_turn(requested: str) -> Turn:
        if requested != name or not queue:
            return scripted(requested)
        reply = queue.popleft()
        return reply(fake.requests(name)[-1]) if callable(reply) else reply

    monkeypatch.setattr(fake, "_next_turn", next_turn)


def passages(tool_content: str) -> list[tuple[str, str]]:
    """(marker, passage) pairs of a search result the model was shown."""
    found = list(MARKER.finditer(tool_content))
    ends = [m.start() for m in found[1:]] + [len(tool_content)]
    return [(m.group(0), tool_content[m.end() : end].strip()) for m, end in zip(found, ends, strict=True)]


def search(call_id: str, arguments: dict[str, Any] = QUERY) -> Turn:
    return tool_calls([(call_id, "file_search", arguments)])


def marker_in(request: dict[str, Any], needle: str, call_id: str | None = None) -> str:
    """The marker of the passage holding ``needle`` among the search results in a request (in
    the results of ``call_id`` only, if given)."""
    tool_messages = [
        m
        for m in request["messages"]
        if m["role"] == "tool" and MARKER.search(m["content"] or "") and call_id in (None, m["tool_call_id"])
    ]
    found = [marker for m in tool_messages for marker, passage in passages(m["content"]) if needle in passage]
    assert found, f"no passage the model was given holds {needle!r}"
    return found[0]


COOLED = "The Zorblax reactor is cooled by {fact}{cite}."


def answer_citing(template: str = COOLED, **needles: str | tuple[str, str]) -> Reply:
    """An answer citing, for each ``{name}`` of the template, the passage that holds
    ``needles[name]`` (a text, or (call id, text)); by default ``{cite}``: the fact. The
    markers are split over small chunks: the stream must not cut them."""
    wanted = needles or {"cite": FACT}

    def reply(request: dict[str, Any]) -> Turn:
        markers = {}
        for name, needle in wanted.items():
            call_id, held = (None, needle) if isinstance(needle, str) else needle
            markers[name] = marker_in(request, held, call_id)
        return text(template.format(fact=FACT, **markers), chunk_size=3)

    return reply


def streamed_text(stream: SSEStream) -> str:
    return "".join(p["text"]["value"] for d in stream.data("thread.message.delta") for p in d["delta"]["content"])


def delta_annotations(stream: SSEStream) -> list[dict[str, Any]]:
    return [
        a for d in stream.data("thread.message.delta") for p in d["delta"]["content"] for a in p["text"]["annotations"]
    ]


def citation(marker: str, file_id: str, full_text: str, *, index: int | None = None) -> dict[str, Any]:
    """The annotation a marker in ``full_text`` must carry (``index`` in deltas)."""
    start = full_text.index(marker)
    annotation = {
        "type": "file_citation",
        "text": marker,
        "start_index": start,
        "end_index": start + len(marker),
        "file_citation": {"file_id": file_id},
    }
    return annotation if index is None else {"index": index, **annotation}


def search_assistant(lib: Library, model: str, **tool: Any) -> str:
    file_search: dict[str, Any] = {"type": "file_search"}
    if tool:
        file_search["file_search"] = tool
    return lib.client.beta.assistants.create(
        model=model, tools=[file_search], tool_resources={"file_search": {"vector_store_ids": [lib.store_id]}}
    ).id


def question_thread(client: OpenAI, question: str = QUESTION) -> str:
    return client.beta.threads.create(messages=[{"role": "user", "content": question}]).id


def search_results(step: Any) -> list[dict[str, Any]]:
    """The results of the step's only tool call, a file_search (SDK object or event data)."""
    details = step["step_details"] if isinstance(step, dict) else wire(step)["step_details"]
    (call,) = details["tool_calls"]
    assert call["type"] == "file_search"
    return list(call["file_search"]["results"])


def run_and_collect(
    lib: Library, thread_id: str, assistant_id: str, **params: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run to completion; the results (with their content) and ranking options of its one search."""
    run = lib.client.beta.threads.runs.create(thread_id, assistant_id=assistant_id, **params)
    completes(lib.client, thread_id, run.id)
    steps = lib.client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc", include=[CONTENT]).data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    (call,) = wire(steps[0])["step_details"]["tool_calls"]
    return search_results(steps[0]), call["file_search"]["ranking_options"]


# ------------------------------------------------------------------ a streamed run that cites


def test_streamed_run_finds_and_cites_a_fact_only_in_an_uploaded_file(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, search("call_fs"), answer_citing())
    assistant_id = search_assistant(library, model)
    thread_id = question_thread(library.client)

    stream = post_sse(library.http, f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    assert_valid_stream(stream)
    assert [n for n in stream.names if n != "thread.message.delta"] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    tool_step, message_step = stream.data("thread.run.step.created")
    assert tool_step["type"] == "tool_calls" and tool_step["step_details"] == {"type": "tool_calls", "tool_calls": []}
    assert message_step["type"] == "message_creation"
    (delta,) = stream.data("thread.run.step.delta")
    assert delta["id"] == tool_step["id"]
    assert delta["delta"]["step_details"] == {
        "type": "tool_calls",
        "tool_calls": [{"index": 0, "id": "call_fs", "type": "file_search", "file_search": {}}],
    }
    completed_tool_step = stream.data("thread.run.step.completed")[0]
    assert completed_tool_step["id"] == tool_step["id"] and completed_tool_step["status"] == "completed"
    (call,) = completed_tool_step["step_details"]["tool_calls"]
    assert call["id"] == "call_fs" and call["type"] == "file_search"
    assert call["file_search"]["ranking_options"] == {"ranker": DEFAULT_RANKER, "score_threshold": 0.0}
    results = call["file_search"]["results"]
    assert results[0]["file_id"] == library.files["reactor.md"] and results[0]["file_name"] == "reactor.md"
    assert all(set(r) == {"file_id", "file_name", "score"} for r in results), "content without include[]"
    assert all(0.0 <= r["score"] <= 1.0 for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    # What the model was given: the results behind markers, after its own call.
    first, second = sent(fake_llm, model)
    tool_message = second["messages"][-1]
    marker = marker_in(second, FACT)
    assert MARKER.fullmatch(marker) and marker.endswith("†reactor.md】")
    assert FACT not in str(first), "the fact must reach the model only through the search"
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_fs"
    replayed = second["messages"][-2]
    assert (replayed["role"], replayed.get("content")) == ("assistant", None)
    assert replayed["tool_calls"] == [
        {"id": "call_fs", "type": "function", "function": {"name": "file_search", "arguments": QUERY_JSON}}
    ]
    assert second["messages"][:-2] == first["messages"] == [{"role": "user", "content": QUESTION}]
    assert [p for p, _ in passages(tool_message["content"])] == [
        f"【0:{i}†{r['file_name']}】" for i, r in enumerate(results)
    ]
    for request in (first, second):
        (tool,) = request["tools"]
        assert tool["type"] == "function" and tool["function"]["name"] == "file_search"
        assert tool["function"]["parameters"]["properties"]["queries"]["type"] == "array"
        assert request["tool_choice"] == "auto"

    answer = f"The Zorblax reactor is cooled by {FACT}{marker}."
    assert streamed_text(stream) == answer
    reactor = library.files["reactor.md"]
    assert delta_annotations(stream) == [citation(marker, reactor, answer, index=0)]
    for d in stream.data("thread.message.delta"):  # no delta cuts a marker in two
        value = d["delta"]["content"][0]["text"]["value"]
        assert value.count("【") == value.count("】"), value
    (message,) = stream.data("thread.message.completed")
    assert message["content"] == [
        {"type": "text", "text": {"value": answer, "annotations": [citation(marker, reactor, answer)]}}
    ]
    stored = library.client.beta.threads.messages.retrieve(message["id"], thread_id=thread_id)
    assert wire(stored)["content"] == message["content"]
    validate_object("MessageObject", wire(stored))
    # The run's usage is both model calls': the search round's and the answer's.
    (run,) = stream.data("thread.run.completed")
    steps_usage = [completed_tool_step["usage"], stream.data("thread.run.step.completed")[1]["usage"]]
    assert all(u["completion_tokens"] > 0 for u in steps_usage)
    assert run["usage"] == {
        k: sum(u[k] for u in steps_usage) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


class CitingHandler(AssistantEventHandler):
    """What an application sees through the SDK's event handler."""

    def __init__(self) -> None:
        super().__init__()
        self.created_calls: list[ToolCall] = []
        self.done_steps: list[RunStep] = []
        self.delta_annotations: list[dict[str, Any]] = []
        self.done_messages: list[Message] = []
        self.texts: list[Text] = []

    @override
    def on_tool_call_created(self, tool_call: ToolCall) -> None:
        self.created_calls.append(tool_call)

    @override
    def on_run_step_done(self, run_step: RunStep) -> None:
        self.done_steps.append(run_step)

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.delta_annotations += [wire(a) for a in delta.annotations or []]

    @override
    def on_text_done(self, text: Text) -> None:
        self.texts.append(text)

    @override
    def on_message_done(self, message: Message) -> None:
        self.done_messages.append(message)


def test_event_handler_sees_the_search_its_content_with_include_and_the_citation(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, search("call_sdk"), answer_citing())
    assistant_id = search_assistant(library, model)
    thread_id = question_thread(library.client)

    handler = CitingHandler()
    with library.client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, include=[CONTENT], event_handler=handler
    ) as stream:
        stream.until_done()
        final_messages = stream.get_final_messages()
        run = stream.get_final_run()
    assert run.status == "completed"

    assert [(c.id, c.type) for c in handler.created_calls] == [("call_sdk", "file_search")]
    tool_step, message_step = handler.done_steps
    assert (tool_step.type, message_step.type) == ("tool_calls", "message_creation")
    results = search_results(tool_step)
    assert results[0]["file_id"] == library.files["reactor.md"]
    # With include[] the stream shows each result's text, exactly what the model was shown.
    tool_content = sent(fake_llm, model)[1]["messages"][-1]["content"]
    for (marker, passage), result in zip(passages(tool_content), results, strict=True):
        assert marker.endswith(f"†{result['file_name']}】")
        assert [c["type"] for c in result["content"]] == ["text"]
        assert result["content"][0]["text"].strip() == passage
    assert FACT in results[0]["content"][0]["text"]

    marker = marker_in(sent(fake_llm, model)[1], FACT)
    answer = f"The Zorblax reactor is cooled by {FACT}{marker}."
    reactor = library.files["reactor.md"]
    assert handler.delta_annotations == [citation(marker, reactor, answer, index=0)]
    (message,) = handler.done_messages
    assert message.content[0].text.value == answer
    assert [wire(a) for a in message.content[0].text.annotations] == [citation(marker, reactor, answer)]
    assert [m.id for m in final_messages] == [message.id]
    assert [t.value for t in handler.texts] == [answer]


def test_forcing_file_search_reaches_the_model_once(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, *[t for c in "ab" for t in (search(f"call_{c}"), answer_citing())])
    assistant_id = search_assistant(library, model)
    thread_id = question_thread(library.client)
    for forced in ({"type": "file_search"}, "required"):
        run = library.client.beta.threads.runs.create(thread_id, assistant_id=assistant_id, tool_choice=forced)
        assert wire(run)["tool_choice"] == forced
        completes(library.client, thread_id, run.id)
    named_first, named_second, required_first, required_second = sent(fake_llm, model)
    assert named_first["tool_choice"] == {"type": "function", "function": {"name": "file_search"}}
    assert required_first["tool_choice"] == "required"
    # Forced once: after its search the model must be free to answer, not forced to search again.
    assert (named_second["tool_choice"], required_second["tool_choice"]) == ("auto", "auto")


# ------------------------------------------------------------------ run steps and settings


def test_run_steps_show_result_content_only_with_include(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, search("call_steps"), answer_citing())
    assistant_id = search_assistant(library, model)
    thread_id = question_thread(library.client)
    steps_api = library.client.beta.threads.runs.steps

    stream = post_sse(
        library.http,
        f"/v1/threads/{thread_id}/runs?include[]={CONTENT}",
        {"assistant_id": assistant_id, "stream": True},
    )
    assert_valid_stream(stream)
    run_id = stream.data("thread.run.completed")[0]["id"]
    streamed = search_results(stream.data("thread.run.step.completed")[0])
    assert all(set(r) == {"file_id", "file_name", "score", "content"} for r in streamed), streamed

    listed_plain = steps_api.list(run_id, thread_id=thread_id, order="asc").data
    listed_full = steps_api.list(run_id, thread_id=thread_id, order="asc", include=[CONTENT]).data
    tool_step_id = listed_plain[0].id
    got_plain = steps_api.retrieve(tool_step_id, thread_id=thread_id, run_id=run_id)
    got_full = steps_api.retrieve(tool_step_id, thread_id=thread_id, run_id=run_id, include=[CONTENT])
    for step in (listed_plain[0], got_plain):
        assert [set(r) for r in search_results(step)] == [{"file_id", "file_name", "score"}] * len(streamed)
        validate_object("RunStepObject", wire(step))
    for step in (listed_full[0], got_full):
        assert search_results(step) == streamed
        validate_object("RunStepObject", wire(step))
    plain = [{k: v for k, v in r.items() if k != "content"} for r in streamed]
    assert search_results(listed_plain[0]) == plain
    assert all(r["content"][0]["type"] == "text" and r["content"][0]["text"] for r in streamed)
    (call,) = wire(got_full)["step_details"]["tool_calls"]
    assert call["file_search"]["ranking_options"] == {"ranker": DEFAULT_RANKER, "score_threshold": 0.0}
    # Raw HTTP with the exact query the spec names.
    raw = library.http.get(f"/v1/threads/{thread_id}/runs/{run_id}/steps/{tool_step_id}", params={"include[]": CONTENT})
    assert raw.status_code == 200 and search_results(raw.json()) == streamed
    # The marker numbering the model saw is the step's result order.
    tool_content = sent(fake_llm, model)[1]["messages"][-1]["content"]
    assert [p for _, p in passages(tool_content)] == [r["content"][0]["text"].strip() for r in streamed]


def test_assistant_max_num_results_and_score_threshold_are_honoured(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, *[t for c in "abcd" for t in (search(f"call_{c}"), text("Noted."))])
    client = library.client

    baseline, options = run_and_collect(library, question_thread(client), search_assistant(library, model))
    scores = [r["score"] for r in baseline]
    # The store holds three chunks, one a file: all are results, the reactor's first.
    assert [r["file_name"] for r in baseline][0] == "reactor.md"
    assert len(baseline) == 3 and len(set(scores)) == 3, baseline
    assert scores == sorted(scores, reverse=True)
    assert options == {"ranker": DEFAULT_RANKER, "score_threshold": 0.0}

    capped, _ = run_and_collect(library, question_thread(client), search_assistant(library, model, max_num_results=1))
    assert capped == baseline[:1]
    assert len(passages(sent(fake_llm, model)[3]["messages"][-1]["content"])) == 1  # the model saw one

    threshold = round((scores[1] + scores[2]) / 2, 4)
    assert scores[2] < threshold < scores[1]
    assistant_id = search_assistant(library, model, ranking_options={"score_threshold": threshold})
    kept, options = run_and_collect(library, question_thread(client), assistant_id)
    assert kept == baseline[:2]
    assert options == {"ranker": DEFAULT_RANKER, "score_threshold": threshold}

    # A run's own tools override the assistant's settings.
    kept, _ = run_and_collect(
        library,
        question_thread(client),
        search_assistant(library, model),
        tools=[{"type": "file_search", "file_search": {"max_num_results": 2}}],
    )
    assert kept == baseline[:2]


# ------------------------------------------------------------------ several calls


def test_model_that_searches_twice_then_cites_both_rounds(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pumps_fact = "each moves 30 litres a minute"
    converse(
        fake_llm,
        model,
        monkeypatch,
        search("call_one"),
        search("call_two", {"queries": ["how fast do the Zorblax pumps move coolant"]}),
        answer_citing(
            "Cooled by {fact}{reactor}; the pumps move 30 litres a minute{pumps}.",
            reactor=("call_one", FACT),
            pumps=("call_two", pumps_fact),
        ),
    )
    assistant_id = search_assistant(library, model)
    thread_id = question_thread(library.client)
    stream = post_sse(library.http, f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    assert_valid_stream(stream)
    assert stream.names[-2] == "thread.run.completed"
    created = stream.data("thread.run.step.created")
    assert [s["type"] for s in created] == ["tool_calls", "tool_calls", "message_creation"]
    completed = stream.data("thread.run.step.completed")
    assert [s["step_details"]["tool_calls"][0]["id"] for s in completed[:2]] == ["call_one", "call_two"]

    first, second, third = sent(fake_llm, model)
    assert {m[:3] for m, _ in passages(second["messages"][-1]["content"])} == {"【0:"}
    assert {m[:3] for m, _ in passages(third["messages"][-1]["content"])} == {"【1:"}
    # The third request replays both rounds, each call before its results.
    assert [(m["role"], m.get("tool_call_id")) for m in third["messages"]] == [
        ("user", None),
        ("assistant", None),
        ("tool", "call_one"),
        ("assistant", None),
        ("tool", "call_two"),
    ]
    assert third["messages"][2] == second["messages"][2]
    assert third["tool_choice"] == "auto" and third["tools"] == first["tools"]

    reactor_marker, pumps_marker = marker_in(third, FACT, "call_one"), marker_in(third, pumps_fact, "call_two")
    assert reactor_marker.startswith("【0:") and pumps_marker.startswith("【1:")
    answer = f"Cooled by {FACT}{reactor_marker}; the pumps move 30 litres a minute{pumps_marker}."
    assert streamed_text(stream) == answer
    reactor, pumps = library.files["reactor.md"], library.files["pumps.md"]
    assert delta_annotations(stream) == [
        citation(reactor_marker, reactor, answer, index=0),
        citation(pumps_marker, pumps, answer, index=1),
    ]
    (message,) = stream.data("thread.message.completed")
    assert message["content"][0]["text"]["annotations"] == [
        citation(reactor_marker, reactor, answer),
        citation(pumps_marker, pumps, answer),
    ]


def test_parallel_searches_in_one_turn_are_numbered_in_order(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pumps_fact = "each moves 30 litres a minute"
    converse(
        fake_llm,
        model,
        monkeypatch,
        tool_calls([("call_a", "file_search", QUERY), ("call_b", "file_search", {"queries": ["Zorblax pumps"]})]),
        # A marker no search gave stays plain text; a 【 that never closes is not held back forever.
        answer_citing(
            "Pumps: 30 litres a minute{pumps}, coolant: {fact}{reactor} (not 【7:3†made-up.md】). 【end",
            reactor=("call_a", FACT),
            pumps=("call_b", pumps_fact),
        ),
    )
    assistant_id = search_assistant(library, model)
    thread_id = question_thread(library.client)
    stream = post_sse(library.http, f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    assert_valid_stream(stream)
    assert stream.names[-2] == "thread.run.completed"
    tool_step = stream.data("thread.run.step.completed")[0]
    assert [(c["id"], c["type"]) for c in tool_step["step_details"]["tool_calls"]] == [
        ("call_a", "file_search"),
        ("call_b", "file_search"),
    ]
    _, second = sent(fake_llm, model)
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_a", "call_b"]
    assert {m[:3] for m, _ in passages(tool_messages[0]["content"])} == {"【0:"}
    assert {m[:3] for m, _ in passages(tool_messages[1]["content"])} == {"【1:"}

    reactor_marker, pumps_marker = marker_in(second, FACT, "call_a"), marker_in(second, pumps_fact, "call_b")
    answer = f"Pumps: 30 litres a minute{pumps_marker}, coolant: {FACT}{reactor_marker} (not 【7:3†made-up.md】). 【end"
    assert streamed_text(stream) == answer
    expected = [
        citation(pumps_marker, library.files["pumps.md"], answer),
        citation(reactor_marker, library.files["reactor.md"], answer),
    ]
    assert delta_annotations(stream) == [{"index": i, **a} for i, a in enumerate(expected)]
    (message,) = stream.data("thread.message.completed")
    assert message["content"][0]["text"] == {"value": answer, "annotations": expected}


def test_search_rounds_are_bounded(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, *[search(f"call_{n}") for n in range(4)], text("Enough searching."))
    thread_id = question_thread(library.client)
    run = library.client.beta.threads.runs.create(thread_id, assistant_id=search_assistant(library, model))
    completes(library.client, thread_id, run.id)
    requests = sent(fake_llm, model)
    assert [r["tool_choice"] for r in requests] == ["auto", "auto", "auto", "auto", "none"]
    assert all(r["tools"] == requests[0]["tools"] for r in requests)  # still defined: the history calls it
    steps = library.client.beta.threads.runs.steps.list(run.id, thread_id=thread_id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls"] * 4 + ["message_creation"]


def test_a_model_that_searches_when_told_to_answer_fails_the_run(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(fake_llm, model, monkeypatch, *[search(f"call_{n}") for n in range(6)], text("Too late."))
    thread_id = question_thread(library.client)
    run = library.client.beta.threads.runs.create(thread_id, assistant_id=search_assistant(library, model))
    ended = wait_for(library.client, thread_id, run.id, TERMINAL)
    assert ended.status == "failed" and ended.last_error.code == "server_error"
    assert ended.last_error.message == "The model kept searching the files instead of answering."
    assert [r["tool_choice"] for r in sent(fake_llm, model)] == ["auto", "auto", "auto", "auto", "none"]
    # The thread is free again.
    library.client.beta.threads.messages.create(thread_id, role="user", content="Still there?")


def test_function_and_file_search_in_one_turn(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse(
        fake_llm,
        model,
        monkeypatch,
        tool_calls([("call_weather", "get_weather", {"city": "Quendel"}), ("call_fs", "file_search", QUERY)]),
        answer_citing("Sunny in Quendel, and the reactor is cooled by {fact}{cite}."),
    )
    client = library.client
    assistant_id = client.beta.assistants.create(
        model=model,
        tools=[WEATHER_TOOL, {"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [library.store_id]}},
    ).id
    thread_id = question_thread(client, "Weather in Quendel, and what cools its reactor?")

    stream = post_sse(library.http, f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    assert_valid_stream(stream)
    assert stream.names[-2] == "thread.run.requires_action"
    run = stream.data("thread.run.requires_action")[0]
    assert run["required_action"] == {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": "call_weather",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Quendel"}'},
                }
            ]
        },
    }
    firsts = [
        c for d in stream.data("thread.run.step.delta") for c in d["delta"]["step_details"]["tool_calls"] if "id" in c
    ]
    assert [(c["id"], c["type"]) for c in firsts] == [("call_weather", "function"), ("call_fs", "file_search")]
    parked = client.beta.threads.runs.steps.list(run["id"], thread_id=thread_id).data
    assert [(s.type, s.status) for s in parked] == [("tool_calls", "in_progress")]
    weather, searched = wire(parked[0])["step_details"]["tool_calls"]
    assert weather["function"]["output"] is None
    assert searched["file_search"]["results"][0]["file_id"] == library.files["reactor.md"]

    resumed = post_sse(
        library.http,
        f"/v1/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": "call_weather", "output": "Sunny, 21C"}], "stream": True},
    )
    assert_valid_stream(resumed)
    assert resumed.names[-2] == "thread.run.completed"
    step = resumed.data("thread.run.step.completed")[0]
    weather, searched = step["step_details"]["tool_calls"]
    assert weather["function"]["output"] == "Sunny, 21C"
    assert set(searched["file_search"]["results"][0]) == {"file_id", "file_name", "score"}

    first, second = sent(fake_llm, model)
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "file_search"]
    assert [(m["role"], m.get("tool_call_id")) for m in second["messages"][-3:]] == [
        ("assistant", None),
        ("tool", "call_weather"),
        ("tool", "call_fs"),
    ]
    assert second["messages"][-2]["content"] == "Sunny, 21C"
    marker = marker_in(second, FACT)
    answer = f"Sunny in Quendel, and the reactor is cooled by {FACT}{marker}."
    (message,) = resumed.data("thread.message.completed")
    assert message["content"][0]["text"] == {
        "value": answer,
        "annotations": [citation(marker, library.files["reactor.md"], answer)],
    }
    assert delta_annotations(resumed) == [citation(marker, library.files["reactor.md"], answer, index=0)]


# ------------------------------------------------------------------ attachments


TEA = "fourteen bags of smoked tea a week"
# Long enough (some twenty chunks) that ingesting it takes a while: a run must wait for it.
LEDGER = (
    f"# Quendel ledger\n\nThe Quendel station's ration is {TEA}, logged by the quartermaster.\n\n"
    + "".join(
        f"Crate {n} of hull plating, bolts and sealant was counted on deck {n % 7}. " * 20 + "\n\n" for n in range(40)
    )
).encode()
SHORT_LEDGER = f"# Quendel ledger\n\nThe Quendel station's ration is {TEA}.\n".encode()
TEA_ANSWER = f"The ration is {TEA}{{cite}}."


def status_then_search(client: OpenAI, statuses: list[str], store_of: Callable[[], str], file_id: str) -> Reply:
    """The model's first turn: record the attached file's status at the moment the model is
    called, then search."""

    def reply(request: dict[str, Any]) -> Turn:
        statuses.append(client.vector_stores.files.retrieve(file_id, vector_store_id=store_of()).status)
        return search("call_tea", {"queries": ["Quendel ration"]})

    return reply


def test_attachments_go_to_a_thread_store_and_a_new_run_waits_for_them(
    client: OpenAI, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = upload(client, "ledger.md", LEDGER)
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "file_search"}])
    thread = client.beta.threads.create()
    assert wire(thread)["tool_resources"] in (None, {})
    statuses: list[str] = []

    def thread_store() -> str:
        return client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids[0]

    converse(
        fake_llm,
        model,
        monkeypatch,
        status_then_search(client, statuses, thread_store, ledger),
        answer_citing(TEA_ANSWER, cite=TEA),
    )
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="How much tea does the station get?",
        attachments=[{"file_id": ledger, "tools": [{"type": "file_search"}]}],
    )
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    # While the file is being ingested the run waits for it, queued.
    store_id = thread_store()
    waited, deadline = 0, time.monotonic() + DEADLINE
    while True:
        run_status = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status
        if client.vector_stores.files.retrieve(ledger, vector_store_id=store_id).status != "in_progress":
            break
        assert run_status == "queued"  # read before the file was seen in progress: the run did not start
        assert time.monotonic() < deadline, "the attached file is still being ingested"
        waited += 1
        time.sleep(0.1)
    assert waited > 0, "the file was ingested before the run could wait for it: the test proves nothing"

    completes(client, thread.id, run.id, timeout=60)
    assert statuses == ["completed"], "the model was called before the attached file was ingested"
    assert sent(fake_llm, model)[0]["messages"][-1]["content"] == "How much tea does the station get?"
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    marker = marker_in(sent(fake_llm, model)[1], TEA)
    answer = TEA_ANSWER.format(cite=marker)
    assert wire(message)["content"][0]["text"] == {"value": answer, "annotations": [citation(marker, ledger, answer)]}

    # The thread's store: created on demand, expiring seven days after its last use, holding the file.
    store = client.vector_stores.retrieve(store_id)
    assert wire(store)["expires_after"] == {"anchor": "last_active_at", "days": 7}
    assert store.expires_at == store.last_active_at + 7 * 24 * 3600
    assert [(f.id, f.status) for f in client.vector_stores.files.list(store_id)] == [(ledger, "completed")]


def test_attached_files_on_create_run_and_create_and_run_are_searched_with_the_assistants(
    library: Library, fake_llm: FakeLLM, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = library.client
    assistant_id = search_assistant(library, model)  # the library's store, and the thread's, together
    attach = [{"file_id": "", "tools": [{"type": "file_search"}]}]

    def newest_store() -> str:  # the thread's: the one the request created
        return client.vector_stores.list(order="desc", limit=1).data[0].id

    for case in ("additional_messages", "create_and_run"):
        # The first run's file takes a while to ingest: its stream waits, with keep-alives.
        ledger = upload(client, "ledger.md", LEDGER if case == "additional_messages" else SHORT_LEDGER)
        attach[0]["file_id"] = ledger
        statuses: list[str] = []
        fake_llm.reset(fake_name(model))
        converse(
            fake_llm,
            model,
            monkeypatch,
            status_then_search(client, statuses, newest_store, ledger),
            answer_citing(TEA_ANSWER + " Also {fact}{cite_reactor}.", cite=TEA, cite_reactor=FACT),
        )
        message = {"role": "user", "content": "How much tea, and what cools the reactor?", "attachments": attach}
        if case == "additional_messages":
            thread_id = client.beta.threads.create().id
            body = {"assistant_id": assistant_id, "stream": True, "additional_messages": [message]}
            stream = post_sse(library.http, f"/v1/threads/{thread_id}/runs", body)
        else:
            body = {"assistant_id": assistant_id, "stream": True, "thread": {"messages": [message]}}
            stream = post_sse(library.http, "/v1/threads/runs", body)
            thread_id = stream.data("thread.created")[0]["id"]
        assert_valid_stream(stream)
        assert stream.names[-2] == "thread.run.completed", case
        assert statuses == ["completed"], case
        assert case != "additional_messages" or "keep-alive" in stream.comments  # it waited, streaming

        (store_id,) = client.beta.threads.retrieve(thread_id).tool_resources.file_search.vector_store_ids
        assert store_id != library.store_id
        assert wire(client.vector_stores.retrieve(store_id))["expires_after"] == {"anchor": "last_active_at", "days": 7}
        assert [f.id for f in client.vector_stores.files.list(store_id)] == [ledger]
        found = {r["file_name"] for r in search_results(stream.data("thread.run.step.completed")[0])}
        assert {"ledger.md", "reactor.md"} <= found, found

        request = sent(fake_llm, model)[1]
        tea_marker, reactor_marker = marker_in(request, TEA), marker_in(request, FACT)
        answer = TEA_ANSWER.format(cite=tea_marker) + f" Also {FACT}{reactor_marker}."
        assert streamed_text(stream) == answer
        assert delta_annotations(stream) == [
            citation(tea_marker, ledger, answer, index=0),
            citation(reactor_marker, library.files["reactor.md"], answer, index=1),
        ]
        stored = client.beta.threads.messages.list(thread_id, order="asc").data
        assert [m.role for m in stored] == ["user", "assistant"]
        assert stored[0].attachments[0].file_id == ledger


def test_a_rejected_run_leaves_the_thread_store_alone(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("Slowly.", delay=1.5)])
    ledger = upload(client, "ledger.md", SHORT_LEDGER)
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "file_search"}])
    thread_id = question_thread(client)
    active = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    message = {"role": "user", "content": "x", "attachments": [{"file_id": ledger, "tools": [{"type": "file_search"}]}]}
    with pytest.raises(openai.BadRequestError) as rejected:
        client.beta.threads.runs.create(thread_id, assistant_id=assistant.id, additional_messages=[message])
    assert "already has an active run" in rejected.value.body["message"]
    assert wire(client.beta.threads.retrieve(thread_id))["tool_resources"] in (None, {})
    assert client.vector_stores.list().data == []
    completes(client, thread_id, active.id)


def test_a_run_waiting_for_ingestion_can_be_cancelled(
    client: OpenAI, fake_llm: FakeLLM, model: str, aws: Callable[[str], Any]
) -> None:
    ledger = upload(client, "ledger.md", LEDGER)
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "file_search"}])
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "How much tea?",
                "attachments": [{"file_id": ledger, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    (store_id,) = thread.tool_resources.file_search.vector_store_ids
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert client.vector_stores.files.retrieve(ledger, vector_store_id=store_id).status == "in_progress"
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    assert wait_for(client, thread.id, run.id, {"cancelled"}, timeout=10).status == "cancelled"
    settled_store(client, store_id)

    def run_execution_ended() -> bool:  # a run that was not stopped would call the model once its files are in
        (execution,) = [e for e in executions(aws, "Run") if e["name"] == run.id]
        return execution["status"] != "RUNNING"

    wait_until(run_execution_ended, f"the execution of {run.id} to end")
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled"
    assert sent(fake_llm, model) == []
    assert client.beta.threads.messages.create(thread.id, role="user", content="Thanks").role == "user"


# ------------------------------------------------------------------ images


def test_image_file_part_reaches_the_model_as_a_data_url(
    client: OpenAI, other_client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    pixel = upload(client, "pixel.png", PNG, purpose="vision")
    unnamed = upload(client, "scan", PNG, purpose="vision")  # no extension: the bytes say what it is
    not_an_image = upload(client, "notes.png", b"just some text, whatever the name says", purpose="vision")
    document = upload(client, "readme.md", b"# Not a picture")
    foreign = upload(other_client, "secret.png", PNG, purpose="vision")
    fake_llm.script(fake_name(model), [text("A single pixel.")])
    assistant = client.beta.assistants.create(model=model)
    images = [
        {"file_id": pixel, "detail": "low"},
        {"file_id": unnamed},
        {"file_id": not_an_image},
        {"file_id": document},
        {"file_id": foreign},
    ]
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    *[{"type": "image_file", "image_file": image} for image in images],
                ],
            }
        ]
    )
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    completes(client, thread.id, run.id)
    (request,) = sent(fake_llm, model)
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert request["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
            {"type": "image_url", "image_url": {"url": data_url}},
            {"type": "text", "text": f"[image file {not_an_image} is not available]"},
            {"type": "text", "text": f"[image file {document} is not available]"},
            {"type": "text", "text": f"[image file {foreign} is not available]"},  # another tenant's
        ],
    }


# ------------------------------------------------------------------ tool_resources


def not_found(call: Callable[[], Any]) -> str:
    """The param of the 404 a call must fail with."""
    with pytest.raises(openai.NotFoundError) as raised:
        call()
    body = raised.value.body
    assert raised.value.status_code == 404 and isinstance(body, dict), body
    assert body["type"] == "invalid_request_error"
    return str(body["param"])


def test_tool_resources_naming_missing_or_foreign_objects_are_404(client: OpenAI, other_client: OpenAI) -> None:
    mine = ready_store(client, [])
    foreign_store = other_client.vector_stores.create().id
    foreign_file = upload(other_client, "theirs.md", b"Their secret.")
    stores = "tool_resources.file_search.vector_store_ids[0]"
    helper_files = "tool_resources.file_search.vector_stores[0].file_ids[0]"
    missing = {"file_search": {"vector_store_ids": ["vs_doesnotexist000000000000"]}}
    theirs = {"file_search": {"vector_store_ids": [foreign_store]}}
    ok = {"file_search": {"vector_store_ids": [mine]}}
    assistants, threads = client.beta.assistants, client.beta.threads
    assistant = assistants.create(model="gpt-4o", tools=[{"type": "file_search"}], tool_resources=ok)
    thread = threads.create(tool_resources=ok)

    for resources in (missing, theirs):
        assert not_found(lambda r=resources: assistants.create(model="gpt-4o", tool_resources=r)) == stores
        assert not_found(lambda r=resources: assistants.update(assistant.id, tool_resources=r)) == stores
        assert not_found(lambda r=resources: threads.create(tool_resources=r)) == stores
        assert not_found(lambda r=resources: threads.update(thread.id, tool_resources=r)) == stores
        assert (
            not_found(
                lambda r=resources: threads.create_and_run(assistant_id=assistant.id, thread={"tool_resources": r})
            )
            == "thread." + stores
        )
        assert (
            not_found(lambda r=resources: threads.create_and_run(assistant_id=assistant.id, tool_resources=r)) == stores
        )
        assert (
            not_found(
                lambda r=resources: threads.create_and_run(
                    assistant_id=assistant.id, thread={"tool_resources": ok}, tool_resources=r
                )
            )
            == stores
        )

    def rejects(file_id: str) -> None:  # a file that does not exist, or is another tenant's
        their_files = {"file_search": {"vector_stores": [{"file_ids": [file_id]}]}}
        assert not_found(lambda: assistants.create(model="gpt-4o", tool_resources=their_files)) == helper_files
        their_code_files = {"code_interpreter": {"file_ids": [file_id]}}
        assert (
            not_found(lambda: assistants.create(model="gpt-4o", tool_resources=their_code_files))
            == "tool_resources.code_interpreter.file_ids[0]"
        )
        attached = [{"role": "user", "content": "x", "attachments": [{"file_id": file_id, "tools": []}]}]
        assert not_found(lambda: threads.create(messages=attached)) == "messages[0].attachments[0].file_id"
        assert (
            not_found(lambda: threads.create_and_run(assistant_id=assistant.id, thread={"messages": attached}))
            == "thread.messages[0].attachments[0].file_id"
        )
        assert (
            not_found(lambda: threads.runs.create(thread.id, assistant_id=assistant.id, additional_messages=attached))
            == "additional_messages[0].attachments[0].file_id"
        )
        assert not_found(lambda: threads.update(thread.id, tool_resources=their_files)) == helper_files
        assert (
            not_found(
                lambda: threads.messages.create(
                    thread.id,
                    role="user",
                    content="x",
                    attachments=[{"file_id": file_id, "tools": [{"type": "file_search"}]}],
                )
            )
            == "attachments[0].file_id"
        )

    rejects("file-doesnotexist00000000000")
    rejects(foreign_file)
    # Nothing was changed or created by the rejected requests.
    assert [a.id for a in assistants.list()] == [assistant.id]
    assert wire(assistants.retrieve(assistant.id))["tool_resources"] == ok
    assert wire(threads.retrieve(thread.id))["tool_resources"] == ok
    assert [s.id for s in client.vector_stores.list()] == [mine]
    assert threads.runs.list(thread.id).data == []
    # Valid top-level tool_resources of create-and-run become the new thread's.
    run = threads.create_and_run(assistant_id=assistant.id, tool_resources=ok)
    assert wire(threads.retrieve(run.thread_id))["tool_resources"] == ok


def test_vector_stores_helper_creates_a_store_holding_the_files(client: OpenAI) -> None:
    first, second = upload(client, "one.md", b"One fish."), upload(client, "two.md", b"Two fish.")
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [first, second], "metadata": {"k": "v"}}]}},
    )
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids
    thread = client.beta.threads.create(tool_resources={"file_search": {"vector_stores": [{"file_ids": [first]}]}})
    (thread_store_id,) = thread.tool_resources.file_search.vector_store_ids
    assert thread_store_id != store_id
    assert client.beta.assistants.retrieve(assistant.id).tool_resources.file_search.vector_store_ids == [store_id]
    assert client.vector_stores.retrieve(store_id).metadata == {"k": "v"}
    assert sorted(f.id for f in client.vector_stores.files.list(store_id)) == sorted([first, second])
    assert [f.id for f in client.vector_stores.files.list(thread_store_id)] == [first]
    done = settled_store(client, store_id)
    assert (done.file_counts.completed, done.file_counts.total, done.status) == (2, 2, "completed")
    assert settled_store(client, thread_store_id).file_counts.completed == 1

    # A rejected request creates no store: updating a thread that does not exist.
    helper = {"file_search": {"vector_stores": [{"file_ids": [first]}]}}
    with pytest.raises(openai.NotFoundError) as missing_thread:
        client.beta.threads.update("thread_doesnotexist0000000000", tool_resources=helper)
    assert missing_thread.value.body["param"] == "thread_id"
    assert sorted(s.id for s in client.vector_stores.list()) == sorted([store_id, thread_store_id])


def test_updating_a_missing_assistant_creates_no_store(client: OpenAI) -> None:
    first = upload(client, "one.md", b"One fish.")
    helper = {"file_search": {"vector_stores": [{"file_ids": [first]}]}}
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.assistants.update("asst_doesnotexist00000000000", tool_resources=helper)
    assert missing.value.body["param"] == "assistant_id"
    assert client.vector_stores.list().data == []


# ------------------------------------------------------------------ nothing to search


def test_file_search_without_stores_offers_no_search_tool(library: Library, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("No files."), text("Still none."), text("None at all.")])
    client = library.client
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "file_search"}, WEATHER_TOOL])
    thread_id = question_thread(client)
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    completes(client, thread_id, run.id)
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert [s.type for s in steps] == ["message_creation"]
    # Naming file_search when there is nothing to search: the model is not handed a tool it lacks.
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id, tool_choice={"type": "file_search"})
    completes(client, thread_id, run.id)
    # A store that was deleted since is not searched either.
    gone = client.vector_stores.create().id
    with_gone = client.beta.assistants.create(
        model=model, tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [gone]}}
    )
    client.vector_stores.delete(gone)
    run = client.beta.threads.runs.create(thread_id, assistant_id=with_gone.id)
    completes(client, thread_id, run.id)

    plain, forced, deleted = sent(fake_llm, model)
    assert plain["tools"] == [WEATHER_TOOL] and plain["tool_choice"] == "auto"
    assert forced["tools"] == [WEATHER_TOOL] and forced["tool_choice"] == "auto"
    assert "tools" not in deleted and "tool_choice" not in deleted
