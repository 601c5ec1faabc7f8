"""Run-level settings reach the model, and what a run reports back (usage, steps, lists, timestamps).

Every test scripts the fake LLM for a model of its own and then asserts on the request bodies
the fake received (``fake_llm.requests(name)``), on the run and on its steps and messages.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.harness.fake_llm import FakeLLM, _estimate_prompt_tokens, length, rate_limited, text, tool_calls
from tests.harness.openapi_spec import validate_object, wire
from tests.harness.scenario import TERMINAL, WEATHER_TOOL, fake_name, wait_for

TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def run_to_end(client: OpenAI, thread_id: str, assistant_id: str, **kwargs: Any) -> Any:
    run = client.beta.threads.runs.create(thread_id, assistant_id=assistant_id, **kwargs)
    return wait_for(client, thread_id, run.id, TERMINAL)


def user_turns(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(role, content) of the non-system messages of a request body."""
    return [(m["role"], m.get("content")) for m in body["messages"] if m["role"] != "system"]


def system_contents(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "system"]


# ------------------------------------------------------------------ instructions and messages


def test_run_instructions_replace_the_assistants(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("Bonjour.")])
    assistant = client.beta.assistants.create(model=model, instructions="You are the ASSISTANT-LEVEL persona.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hello"}])
    run = run_to_end(
        client,
        thread.id,
        assistant.id,
        instructions="You are the RUN-LEVEL persona.",
        additional_instructions="Always answer in French.",
    )
    assert run.status == "completed", run.last_error
    assert run.instructions.startswith("You are the RUN-LEVEL persona.")
    (body,) = fake_llm.requests(fake_name(model))
    assert body["messages"][0]["role"] == "system"
    (system,) = system_contents(body)
    assert "ASSISTANT-LEVEL" not in system
    assert system.startswith("You are the RUN-LEVEL persona.")
    assert system.endswith("Always answer in French.")
    assert user_turns(body) == [("user", "Say hello")]


def test_additional_instructions_are_appended_to_the_assistants(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model, instructions="Base persona.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = run_to_end(client, thread.id, assistant.id, additional_instructions="Be brief.")
    assert run.status == "completed", run.last_error
    (body,) = fake_llm.requests(fake_name(model))
    (system,) = system_contents(body)
    assert system.startswith("Base persona.") and system.endswith("Be brief.")
    assert system.index("Base persona.") < system.index("Be brief.")


def test_additional_messages_are_added_to_the_thread_and_sent(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("Noted.")])
    assistant = client.beta.assistants.create(model=model, instructions="Be helpful.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "first"}])
    run = run_to_end(
        client,
        thread.id,
        assistant.id,
        additional_messages=[
            {"role": "user", "content": "second", "metadata": {"k": "v"}},
            {"role": "assistant", "content": "third"},
            {"role": "user", "content": "fourth"},
        ],
    )
    assert run.status == "completed", run.last_error
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [(m.role, m.content[0].text.value) for m in messages] == [
        ("user", "first"),
        ("user", "second"),
        ("assistant", "third"),
        ("user", "fourth"),
        ("assistant", "Noted."),
    ]
    assert messages[1].metadata == {"k": "v"}
    assert messages[-1].run_id == run.id and messages[1].run_id is None
    (body,) = fake_llm.requests(fake_name(model))
    assert system_contents(body) == ["Be helpful."]
    assert user_turns(body) == [("user", "first"), ("user", "second"), ("assistant", "third"), ("user", "fourth")]


# ------------------------------------------------------------------ sampling and tool settings


def test_sampling_settings_reach_the_model(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model, temperature=0.9, top_p=0.9)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Reply with JSON"}])
    run = run_to_end(
        client, thread.id, assistant.id, temperature=0.25, top_p=0.5, response_format={"type": "json_object"}
    )
    assert run.status == "completed", run.last_error
    assert (run.temperature, run.top_p) == (0.25, 0.5)
    assert run.response_format.type == "json_object"
    (body,) = fake_llm.requests(fake_name(model))
    assert body["temperature"] == 0.25
    assert body["top_p"] == 0.5
    assert body["response_format"] == {"type": "json_object"}


def test_json_schema_response_format_reaches_the_model(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"],
        "additionalProperties": False,
    }
    fake_llm.script(fake_name(model), [text('{"city": "Paris", "celsius": 21}')])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    run = run_to_end(
        client,
        thread.id,
        assistant.id,
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": True}},
    )
    assert run.status == "completed", run.last_error
    (body,) = fake_llm.requests(fake_name(model))
    sent = body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "weather"
    assert sent["json_schema"]["schema"] == schema
    assert sent["json_schema"]["strict"] is True


def test_assistant_temperature_is_used_when_the_run_sets_none(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model, temperature=0.3, top_p=0.7)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = run_to_end(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    assert run.temperature == 0.3 and run.top_p == 0.7
    (body,) = fake_llm.requests(fake_name(model))
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.7


def test_tool_choice_required_and_parallel_tool_calls_reach_the_model(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL, TIME_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = run_to_end(client, thread.id, assistant.id, tool_choice="required", parallel_tool_calls=False)
    assert run.status == "completed", run.last_error
    assert run.tool_choice == "required" and run.parallel_tool_calls is False
    (body,) = fake_llm.requests(fake_name(model))
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    assert body["tools"][0]["function"]["parameters"] == WEATHER_TOOL["function"]["parameters"]


def test_named_tool_choice_reaches_the_model(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [tool_calls([("call_named", "get_time", "{}")])])
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL, TIME_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Time?"}])
    created = client.beta.threads.runs.create(
        thread.id, assistant_id=assistant.id, tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    run = wait_for(client, thread.id, created.id, {"requires_action"} | TERMINAL)
    assert run.status == "requires_action"
    assert run.tool_choice.type == "function" and run.tool_choice.function.name == "get_time"
    (body,) = fake_llm.requests(fake_name(model))
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    # parallel_tool_calls defaults to true
    assert body.get("parallel_tool_calls", True) is True
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


# ------------------------------------------------------------------ limits and truncation


def test_max_completion_tokens_and_a_length_finish(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [length("This answer stops in the middle of")])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me a long story"}])
    run = run_to_end(client, thread.id, assistant.id, max_completion_tokens=300)
    (body,) = fake_llm.requests(fake_name(model))
    # litellm sends a chat model's limit as max_tokens (max_completion_tokens only for o-series)
    assert body["max_tokens"] == 300
    assert "max_completion_tokens" not in body

    assert run.status == "incomplete"
    assert run.max_completion_tokens == 300
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_completion_tokens"
    assert run.completed_at is not None and run.failed_at is None and run.expires_at is None
    assert run.usage is not None and run.usage.completion_tokens == 7
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.status == "incomplete"
    assert message.content[0].text.value == "This answer stops in the middle of"
    assert message.incomplete_details is not None and message.incomplete_details.reason == "max_tokens"
    assert message.incomplete_at is not None and message.completed_at is None
    validate_object("RunObject", wire(run))
    validate_object("MessageObject", wire(message))


def test_truncation_last_messages_sends_only_the_newest(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model, instructions="Sys.")
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": "four"},
            {"role": "user", "content": "five"},
        ]
    )
    run = run_to_end(client, thread.id, assistant.id, truncation_strategy={"type": "last_messages", "last_messages": 2})
    assert run.status == "completed", run.last_error
    assert run.truncation_strategy.type == "last_messages" and run.truncation_strategy.last_messages == 2
    (body,) = fake_llm.requests(fake_name(model))
    assert body["messages"] == [
        {"role": "system", "content": "Sys."},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "five"},
    ]


def test_max_prompt_tokens_drops_the_oldest_messages(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    # Each message is about 50 tokens; ten of them do not fit in 256.
    contents = [f"m{i}" + " word" * 48 for i in range(10)]
    assistant = client.beta.assistants.create(model=model, instructions="Sys.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": c} for c in contents])
    run = run_to_end(client, thread.id, assistant.id, max_prompt_tokens=256)
    assert run.status == "completed", run.last_error
    assert run.max_prompt_tokens == 256
    (body,) = fake_llm.requests(fake_name(model))
    assert system_contents(body) == ["Sys."]
    sent = [content for _, content in user_turns(body)]
    assert len(sent) == 4, len(sent)  # system ~8 + 4 x ~53 tokens fit in 256; a fifth would not
    assert sent == contents[-len(sent) :]  # the newest are kept, in order


def test_max_prompt_tokens_too_small_for_the_only_message(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "word " * 2000}])
    run = run_to_end(client, thread.id, assistant.id, max_prompt_tokens=256)
    assert run.status == "incomplete"
    assert run.incomplete_details is not None and run.incomplete_details.reason == "max_prompt_tokens"
    assert run.completed_at is not None
    assert fake_llm.requests(fake_name(model)) == []
    assert client.beta.threads.messages.list(thread.id, run_id=run.id).data == []
    # the thread is free again
    client.beta.threads.messages.create(thread.id, role="user", content="shorter")


# ------------------------------------------------------------------ usage


def test_usage_on_a_completed_run_and_its_step(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("one two three four five")])
    assistant = client.beta.assistants.create(model=model, instructions="Count.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count to five"}])
    run = run_to_end(client, thread.id, assistant.id)
    assert run.status == "completed", run.last_error
    (body,) = fake_llm.requests(fake_name(model))
    usage = run.usage
    assert usage is not None
    assert usage.prompt_tokens == _estimate_prompt_tokens(body)  # as the provider reported it
    assert usage.completion_tokens == 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert step.type == "message_creation" and step.status == "completed"
    assert step.usage is not None
    assert (step.usage.prompt_tokens, step.usage.completion_tokens, step.usage.total_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )


def test_usage_of_a_tool_calling_run_is_the_sum_of_its_steps(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(
        fake_name(model),
        [tool_calls([("call_w", "get_weather", {"city": "Paris"})]), text("It is sunny in Paris today.")],
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "requires_action"
    assert run.usage is not None and run.usage.total_tokens > 0
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": "call_w", "output": "sunny"}],
        poll_interval_ms=100,
    )
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    first, second = fake_llm.requests(fake_name(model))
    assert steps[0].usage.prompt_tokens == _estimate_prompt_tokens(first)
    assert steps[1].usage.prompt_tokens == _estimate_prompt_tokens(second)
    assert steps[1].usage.completion_tokens == 6
    for step in steps:
        assert step.usage.total_tokens == step.usage.prompt_tokens + step.usage.completion_tokens
    assert run.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in steps)
    assert run.usage.completion_tokens == sum(s.usage.completion_tokens for s in steps)
    assert run.usage.total_tokens == sum(s.usage.total_tokens for s in steps)


# ------------------------------------------------------------------ the API surface of runs


def test_poll_after_header_on_create_and_retrieve(client: OpenAI, model: str) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    raw = client.beta.threads.runs.with_raw_response.create(thread.id, assistant_id=assistant.id)
    assert raw.status_code == 200
    poll_after = raw.headers.get("openai-poll-after-ms")
    assert poll_after is not None and int(poll_after) > 0
    run = raw.parse()
    assert run.status in {"queued", "in_progress", "completed"}
    raw = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)
    assert int(raw.headers["openai-poll-after-ms"]) > 0
    assert raw.parse().id == run.id
    wait_for(client, thread.id, run.id, TERMINAL)


def test_poll_helpers(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(
        fake_name(model),
        [tool_calls([("call_a", "get_weather", {"city": "Oslo"})]), text("Snow in Oslo.")],
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "requires_action"
    assert run.required_action is not None and run.required_action.type == "submit_tool_outputs"
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.id, call.type, call.function.name, call.function.arguments) == (
        "call_a",
        "function",
        "get_weather",
        '{"city": "Oslo"}',
    )
    validate_object("RunObject", wire(run))
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": "call_a", "output": "-3C, snow"}],
        poll_interval_ms=100,
    )
    assert run.status == "completed", run.last_error
    assert run.required_action is None
    second = fake_llm.requests(fake_name(model))[1]
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_a"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_a", "content": "-3C, snow"}
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message.content[0].text.value == "Snow in Oslo."

    # create_and_poll straight to completed
    fake_llm.script(fake_name(model), [text("Done.")])
    client.beta.threads.messages.create(thread.id, role="user", content="Thanks")
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tools=[], poll_interval_ms=100
    )
    assert again.status == "completed", again.last_error
    assert "tools" not in fake_llm.requests(fake_name(model))[2]


def test_list_retrieve_update_runs(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create()
    ids = []
    for i in range(3):
        client.beta.threads.messages.create(thread.id, role="user", content=f"q{i}")
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, metadata={"n": str(i)}, poll_interval_ms=100
        )
        assert run.status == "completed", run.last_error
        ids.append(run.id)

    page = client.beta.threads.runs.list(thread.id, limit=2)
    validate_object("ListRunsResponse", wire(page))
    assert [r.id for r in page.data] == [ids[2], ids[1]]
    assert page.has_more is True
    assert page.first_id == ids[2] and page.last_id == ids[1]
    rest = client.beta.threads.runs.list(thread.id, limit=2, after=page.last_id)
    assert [r.id for r in rest.data] == [ids[0]] and rest.has_more is False
    assert [r.id for r in client.beta.threads.runs.list(thread.id, limit=2)] == ids[::-1]  # auto-pagination
    assert [r.id for r in client.beta.threads.runs.list(thread.id, limit=2, order="asc")] == ids
    before = client.beta.threads.runs.list(thread.id, limit=2, order="asc", before=ids[2])
    assert [r.id for r in before.data] == ids[:2]
    for run in page.data:
        validate_object("RunObject", wire(run))

    retrieved = client.beta.threads.runs.retrieve(ids[1], thread_id=thread.id)
    assert retrieved.id == ids[1] and retrieved.thread_id == thread.id and retrieved.assistant_id == assistant.id
    assert retrieved.metadata == {"n": "1"} and retrieved.status == "completed"
    validate_object("RunObject", wire(retrieved))

    updated = client.beta.threads.runs.update(ids[1], thread_id=thread.id, metadata={"label": "kept"})
    assert updated.metadata == {"label": "kept"}
    assert updated.status == "completed" and updated.completed_at == retrieved.completed_at
    assert client.beta.threads.runs.retrieve(ids[1], thread_id=thread.id).metadata == {"label": "kept"}
    validate_object("RunObject", wire(updated))

    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_doesnotexist", thread_id=thread.id)


def test_steps_list_and_retrieve(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(
        fake_name(model),
        [
            tool_calls([("call_1", "get_weather", {"city": "Rome"}), ("call_2", "get_time", {})]),
            text("Warm in Rome, noon."),
        ],
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL, TIME_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather and time in Rome?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "requires_action"
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": "call_2", "output": "12:00"}, {"tool_call_id": "call_1", "output": "warm"}],
        poll_interval_ms=100,
    )
    assert run.status == "completed", run.last_error

    include = ["step_details.tool_calls[*].file_search.results[*].content"]
    first_page = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc", limit=1, include=include)
    validate_object("ListRunStepsResponse", wire(first_page))
    assert len(first_page.data) == 1 and first_page.has_more is True
    all_steps = list(client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc", limit=1))
    assert [s.type for s in all_steps] == ["tool_calls", "message_creation"]
    assert all_steps[0].id == first_page.data[0].id
    desc = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [s.id for s in desc] == [s.id for s in all_steps][::-1]

    tool_step, message_step = all_steps
    assert tool_step.status == "completed" and tool_step.completed_at is not None
    assert tool_step.run_id == run.id and tool_step.thread_id == thread.id and tool_step.assistant_id == assistant.id
    calls = tool_step.step_details.tool_calls
    assert [(c.id, c.function.name, c.function.arguments, c.function.output) for c in calls] == [
        ("call_1", "get_weather", '{"city": "Rome"}', "warm"),
        ("call_2", "get_time", "{}", "12:00"),
    ]
    (message,) = client.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert message_step.step_details.message_creation.message_id == message.id

    for step in all_steps:
        retrieved = client.beta.threads.runs.steps.retrieve(
            step.id, thread_id=thread.id, run_id=run.id, include=include
        )
        assert retrieved == step
        validate_object("RunStepObject", wire(retrieved))

    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve("step_unknown", thread_id=thread.id, run_id=run.id)


def test_messages_list_filtered_by_run(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("First answer."), text("Second answer.")])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Q1"}])
    first = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    client.beta.threads.messages.create(thread.id, role="user", content="Q2")
    second = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert (first.status, second.status) == ("completed", "completed")
    (only_first,) = client.beta.threads.messages.list(thread.id, run_id=first.id).data
    assert only_first.run_id == first.id and only_first.role == "assistant"
    assert only_first.assistant_id == assistant.id
    assert only_first.content[0].text.value == "First answer."
    (only_second,) = client.beta.threads.messages.list(thread.id, run_id=second.id).data
    assert only_second.content[0].text.value == "Second answer."
    assert len(client.beta.threads.messages.list(thread.id).data) == 4
    # the second run saw the whole thread, including the first run's answer
    assert user_turns(fake_llm.requests(fake_name(model))[1]) == [
        ("user", "Q1"),
        ("assistant", "First answer."),
        ("user", "Q2"),
    ]


# ------------------------------------------------------------------ timestamps of each status


def test_every_status_carries_its_timestamps(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    name = fake_name(model)
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])

    fake_llm.script(name, [text("fine")])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "a"}])
    before = int(time.time())
    completed = run_to_end(client, thread.id, assistant.id)
    assert completed.status == "completed"
    assert completed.started_at is not None and completed.completed_at is not None
    assert before - 1 <= completed.created_at <= completed.started_at <= completed.completed_at <= int(time.time())
    assert completed.expires_at is None
    assert completed.failed_at is None and completed.cancelled_at is None
    assert completed.last_error is None and completed.incomplete_details is None

    fake_llm.script(name, [rate_limited()])
    failed = run_to_end(client, thread.id, assistant.id)
    assert failed.status == "failed"
    assert failed.failed_at is not None and failed.failed_at >= failed.created_at
    assert failed.completed_at is None and failed.cancelled_at is None and failed.expires_at is None
    assert failed.last_error is not None

    fake_llm.script(name, [tool_calls([("call_t", "get_weather", {"city": "Lima"})])])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    parked = wait_for(client, thread.id, created.id, {"requires_action"} | TERMINAL)
    assert parked.status == "requires_action"
    assert parked.started_at is not None
    assert parked.expires_at is not None and parked.expires_at > time.time()
    assert parked.completed_at is None and parked.failed_at is None and parked.cancelled_at is None
    validate_object("RunObject", wire(parked))

    client.beta.threads.runs.cancel(parked.id, thread_id=thread.id)
    cancelled = wait_for(client, thread.id, parked.id, TERMINAL)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None and cancelled.cancelled_at >= parked.started_at
    assert cancelled.completed_at is None and cancelled.failed_at is None and cancelled.expires_at is None
    for run in (completed, failed, cancelled):
        validate_object("RunObject", wire(run))
