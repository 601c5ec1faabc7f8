"""Edges of the runs API found by an audit: instructions past OpenAI's limit, partial updates,
``openai-poll-after-ms``, ``include[]`` and a cancel whose execution stop fails."""

from __future__ import annotations

from typing import Any, Final

import httpx
import openai
import pytest
from openai import OpenAI

from assistants_core.repository import THREAD_SK, Repository, thread_pk
from assistants_core.services import runs as run_service
from assistants_core.services.assistants import create_assistant
from assistants_core.services.lifecycle import RunRef, load_run
from assistants_core.services.threads import create_thread
from assistants_core.types import AssistantCreateParams, MessageCreateParams, RunCreateParams, ThreadCreateParams
from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.harness.scenario import TERMINAL, WEATHER_TOOL, bad_request, script, wait_for

FILE_SEARCH_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"
MAX_INSTRUCTIONS = 256_000


def run_to_completion(client: OpenAI, fake: FakeLLM, model: str, thread_id: str, answer: str = "Done.") -> Any:
    script(fake, model, text(answer))
    assistant = client.beta.assistants.create(model=model)
    created = client.beta.threads.runs.create(thread_id, assistant_id=assistant.id)
    run = wait_for(client, thread_id, created.id, TERMINAL)
    assert run.status == "completed", run.last_error
    return run


# ------------------------------------------------------------------ sizes (tests/test_large_content.py: what fits)


def test_instructions_past_openais_limit_are_a_400_and_leave_the_thread_unlocked(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    too_long = "i" * (MAX_INSTRUCTIONS + 1)

    body = bad_request(
        lambda: client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, instructions=too_long)
    )
    assert body["param"] == "instructions"
    body = bad_request(lambda: client.beta.threads.create_and_run(assistant_id=assistant.id, instructions=too_long))
    assert body["param"] == "instructions"

    assert client.beta.threads.runs.list(thread.id).data == []
    client.beta.threads.messages.create(thread.id, role="user", content="Still there?")
    run_to_completion(client, fake_llm, model, thread.id)


# ------------------------------------------------------------------ updates change only what is sent


def test_update_without_metadata_keeps_it(client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = run_to_completion(client, fake_llm, model, thread.id)
    message = client.beta.threads.messages.list(thread.id, order="asc").data[0]
    metadata = {"k": "v"}
    client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata=metadata)
    client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata=metadata)

    for path in (f"/v1/threads/{thread.id}/runs/{run.id}", f"/v1/threads/{thread.id}/messages/{message.id}"):
        response = http.post(path, json={})
        assert response.status_code == 200, response.text
        assert response.json()["metadata"] == metadata, path
        assert http.get(path).json()["metadata"] == metadata, path

    cleared = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={})
    assert cleared.metadata == {}


# ------------------------------------------------------------------ openai-poll-after-ms


def test_every_non_streaming_run_response_says_when_to_poll(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    script(fake_llm, model, tool_calls([("call_1", "get_weather", {})]), text("Sunny."))
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    base = f"/v1/threads/{thread.id}/runs"

    def poll_after(response: httpx.Response) -> str | None:
        assert response.status_code == 200, response.text
        value: str | None = response.headers.get("openai-poll-after-ms")
        return value

    created = http.post(base, json={"assistant_id": assistant.id})
    assert poll_after(created)
    run_id = created.json()["id"]
    assert poll_after(http.get(f"{base}/{run_id}"))
    assert poll_after(http.post(f"{base}/{run_id}", json={"metadata": {"k": "v"}}))
    run = wait_for(client, thread.id, run_id, {"requires_action"} | TERMINAL)
    assert run.status == "requires_action", run.last_error
    outputs = {"tool_outputs": [{"tool_call_id": "call_1", "output": "sunny"}]}
    assert poll_after(http.post(f"{base}/{run_id}/submit_tool_outputs", json=outputs))
    wait_for(client, thread.id, run_id, TERMINAL)

    script(fake_llm, model, tool_calls([("call_2", "get_weather", {})]))
    both = http.post("/v1/threads/runs", json={"assistant_id": assistant.id})
    assert poll_after(both)
    other = both.json()
    wait_for(client, other["thread_id"], other["id"], {"requires_action"} | TERMINAL)
    assert poll_after(http.post(f"/v1/threads/{other['thread_id']}/runs/{other['id']}/cancel"))


# ------------------------------------------------------------------ include[]


def test_include_accepts_only_file_search_content(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])

    body = bad_request(
        lambda: client.beta.threads.runs.create(
            thread.id,
            assistant_id=assistant.id,
            include=["step_details.tool_calls[*].code_interpreter.outputs"],  # type: ignore[list-item]
        )
    )
    assert body["param"] == "include"
    assert client.beta.threads.runs.list(thread.id).data == []

    script(fake_llm, model, text("Fine."))
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, include=[FILE_SEARCH_CONTENT])
    run = wait_for(client, thread.id, created.id, TERMINAL)
    assert run.status == "completed", run.last_error

    steps = f"/v1/threads/{thread.id}/runs/{run.id}/steps"
    rejected = http.get(steps, params={"include[]": "everything"})
    assert rejected.status_code == 400
    assert rejected.json()["error"]["param"] == "include"
    assert http.get(steps, params={"include[]": FILE_SEARCH_CONTENT}).status_code == 200


# ------------------------------------------------------------------ cancel when the stop fails


def test_a_run_overrides_at_most_20_tools(client: OpenAI, model: str) -> None:
    """An assistant may have 128 tools, a run's override 20 (OpenAI's CreateRunRequest)."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    assistant = client.beta.assistants.create(model=model, tools=[tool] * 21)
    thread = client.beta.threads.create()
    body = bad_request(lambda: client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, tools=[tool] * 21))
    assert body["param"] == "tools"
    assert client.beta.threads.runs.list(thread.id).data == []


class FailingStop:
    """An orchestrator whose executions start but cannot be stopped (Step Functions throttling)."""

    def __init__(self) -> None:
        self.stops = 0

    def start(self, tenant: str, thread_id: str, run_id: str, *, event_seq: int = 0) -> None:
        pass

    def stop(self, run_id: str, task_token: str | None = None) -> None:
        self.stops += 1
        raise RuntimeError("ThrottlingException: Rate exceeded")


def test_cancel_ends_cancelled_even_if_the_stop_fails(repo: Repository) -> None:
    tenant = "tenant_cancel"
    assistant = create_assistant(repo, tenant, AssistantCreateParams(model="openai/any"))
    thread = create_thread(repo, tenant, ThreadCreateParams(messages=[MessageCreateParams(role="user", content="Hi")]))
    orchestrator: Any = FailingStop()
    run = run_service.create_run(repo, orchestrator, tenant, thread.id, RunCreateParams(assistant_id=assistant.id))
    ref = RunRef(tenant, thread.id, run.id)

    answered = run_service.cancel_run(repo, orchestrator, ref)

    assert orchestrator.stops == 1
    assert answered.status == "cancelling"
    stored = load_run(repo, ref)
    assert stored is not None and stored.status == "cancelled"
    thread_item = repo.get(thread_pk(tenant, thread.id), THREAD_SK)
    assert thread_item is not None and "active_run_id" not in thread_item.attributes


# ------------------------------------------------------------------ the assistant a run copies


def test_a_run_copies_the_assistant_as_it_is_now_though_the_runs_function_cached_it(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    """The runs function keeps the assistants its runs copied and checks the version in the
    run's transaction (services.assistants.assistant_for_run): an update or a delete made
    through the assistants function since must still show."""
    assistant = client.beta.assistants.create(model=model, instructions="First.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    script(fake_llm, model, text("One."))
    first = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert first.instructions == "First."
    wait_for(client, thread.id, first.id, TERMINAL)

    client.beta.assistants.update(assistant.id, instructions="Second.", metadata={"v": "2"})
    script(fake_llm, model, text("Two."))
    second = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert second.instructions == "Second."
    wait_for(client, thread.id, second.id, TERMINAL)
    assert client.beta.threads.runs.retrieve(second.id, thread_id=thread.id).instructions == "Second."

    client.beta.assistants.delete(assistant.id)
    with pytest.raises(openai.NotFoundError) as raised:
        client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert isinstance(raised.value.body, dict) and raised.value.body["param"] == "assistant_id"
    assert [run.id for run in client.beta.threads.runs.list(thread.id).data] == [second.id, first.id]
