"""Every size OpenAI accepts, end to end through the SDK, on moto and on DynamoDB Local.

DynamoDB items hold 400 KB; instructions of 256,000 characters (up to 1 MB of UTF-8), a
message of a megabyte, tool-call arguments and outputs of hundreds of KB and an answer of over
100k tokens do not fit one. The repository keeps such values in S3 with a pointer in the item
(``repository/content.py``): each test checks the value through get, list, the stream and the
conversation the model is sent next. On DynamoDB Local the same run goes through Amazon's
engine (S3 stays in the emulator).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Stack, stack_in_background
from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.harness.scenario import TERMINAL, WEATHER_TOOL, bad_request, script, sent, wait_for
from tests.test_local_stack_dynamodb_local import CREDENTIALS

MAX_INSTRUCTIONS = 256_000
# Characters of one, two, three and four bytes of UTF-8 (the last one two UTF-16 units in JSON).
MIXED = "a\u00e9\u6307\U0001f642"


@pytest.fixture(scope="module")
def dynamodb_local_stack(
    fake_llm: FakeLLM,
    dynamodb_local_endpoint: str,
    dynamodb_local_tables: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    env = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local_endpoint, **CREDENTIALS}
    with stack_in_background(fake_llm, tmp_path_factory, "stack-large-content", env) as stack:
        yield stack.result(timeout=120)[1]


@pytest.fixture(params=["moto", pytest.param("dynamodb-local", marks=pytest.mark.slow)])
def sdk(request: pytest.FixtureRequest, api_key: str) -> OpenAI:
    """A client of the local stack on moto (the session's) or on DynamoDB Local."""
    if request.param == "moto":
        url = request.getfixturevalue("stack_url")
    else:
        url = request.getfixturevalue("dynamodb_local_stack")
    return OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=120)


def _model_request(fake_llm: FakeLLM, model: str) -> dict[str, Any]:
    return sent(fake_llm, model)[-1]


def _text(message: Any) -> str:
    return "".join(part.text.value for part in message.content if part.type == "text")


def test_instructions_of_256000_multibyte_characters(sdk: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    instructions = (MIXED * MAX_INSTRUCTIONS)[:MAX_INSTRUCTIONS]  # 640,000 bytes of UTF-8
    additional = ("\u8ffd" * MAX_INSTRUCTIONS)[:MAX_INSTRUCTIONS]  # 768,000 bytes
    assistant = sdk.beta.assistants.create(model=model, instructions=instructions)
    assert assistant.instructions == instructions
    assert sdk.beta.assistants.retrieve(assistant.id).instructions == instructions
    listed = {a.id: a for a in sdk.beta.assistants.list(limit=100).data}
    assert listed[assistant.id].instructions == instructions
    body = bad_request(lambda: sdk.beta.assistants.create(model=model, instructions=instructions + "a"))
    assert body["param"] == "instructions"
    body = bad_request(lambda: sdk.beta.assistants.update(assistant.id, instructions=instructions + "a"))
    assert body["param"] == "instructions"

    # The run's own instructions and additional_instructions, both of the largest size.
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    script(fake_llm, model, text("Understood."))
    with sdk.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, instructions=instructions, additional_instructions=additional
    ) as stream:
        stream.until_done()
        streamed = stream.current_run
    expected = instructions + "\n\n" + additional
    assert streamed is not None and streamed.status == "completed" and streamed.instructions == expected
    assert sdk.beta.threads.runs.retrieve(streamed.id, thread_id=thread.id).instructions == expected
    (listed_run,) = sdk.beta.threads.runs.list(thread.id).data
    assert listed_run.instructions == expected
    system = _model_request(fake_llm, model)["messages"][0]
    assert system["role"] in ("system", "developer") and system["content"] == expected

    # The assistant's own, when the run gives none.
    script(fake_llm, model, text("Again."))
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed" and run.instructions == instructions
    assert _model_request(fake_llm, model)["messages"][0]["content"] == instructions


def test_a_message_of_a_megabyte(sdk: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    content = ("word " * 200_000)[:-1] + MIXED * 1000  # 1,009,999 bytes of UTF-8
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": content}])
    message = sdk.beta.threads.messages.create(thread.id, role="user", content=content + "!")
    assert _text(message) == content + "!"
    assert _text(sdk.beta.threads.messages.retrieve(message.id, thread_id=thread.id)) == content + "!"
    listed = sdk.beta.threads.messages.list(thread.id, order="asc").data
    assert [_text(m) for m in listed] == [content, content + "!"]

    assistant = sdk.beta.assistants.create(model=model)
    script(fake_llm, model, text("Read it."))
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    users = [m["content"] for m in _model_request(fake_llm, model)["messages"] if m["role"] == "user"]
    assert [u if isinstance(u, str) else "".join(p["text"] for p in u) for u in users] == [content, content + "!"]

    deleted = sdk.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert deleted.deleted
    assert [_text(m) for m in sdk.beta.threads.messages.list(thread.id, order="asc").data][0] == content


def test_tool_call_arguments_and_outputs_of_hundreds_of_kb(sdk: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    arguments = json.dumps({"city": "Oslo", "notes": (MIXED + "note ") * 60_000})  # ~800 KB of UTF-8
    output = json.dumps({"forecast": ("sunny " + MIXED) * 60_000})  # ~900 KB
    script(
        fake_llm,
        model,
        tool_calls([("call_big", "get_weather", arguments)], args_chunk_size=50_000),
        text("It is sunny."),
    )
    assistant = sdk.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])

    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        streamed_arguments = "".join(
            call.function.arguments or ""
            for event in stream
            if event.event == "thread.run.step.delta"
            for call in getattr(event.data.delta.step_details, "tool_calls", None) or []
            if call.type == "function" and call.function is not None
        )
        run = stream.current_run
    assert run is not None and run.status == "requires_action"
    assert streamed_arguments == arguments
    (call,) = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert call.function.arguments == arguments
    retrieved = sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert retrieved.required_action.submit_tool_outputs.tool_calls[0].function.arguments == arguments  # type: ignore[union-attr]

    with sdk.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": output}]
    ) as stream:
        stream.until_done()
        done = stream.current_run
    assert done is not None and done.status == "completed", done and done.last_error

    steps = sdk.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    tool_step = steps[0]
    (recorded,) = tool_step.step_details.tool_calls  # type: ignore[union-attr]
    assert recorded.function.arguments == arguments and recorded.function.output == output  # type: ignore[union-attr]
    again = sdk.beta.threads.runs.steps.retrieve(tool_step.id, thread_id=thread.id, run_id=run.id)
    assert again.step_details.tool_calls[0].function.output == output  # type: ignore[union-attr]

    conversation = _model_request(fake_llm, model)["messages"]
    (asked,) = [m for m in conversation if m["role"] == "assistant" and m.get("tool_calls")]
    assert asked["tool_calls"][0]["function"]["arguments"] == arguments
    (answered,) = [m for m in conversation if m["role"] == "tool"]
    assert answered["content"] == output


def test_an_answer_of_over_100k_tokens(sdk: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    answer = "".join(f" w{i % 1000}" for i in range(120_000)) + " " + MIXED * 5000  # ~640 KB
    script(fake_llm, model, text(answer, chunk_size=40_000, tps=0), text("Noted."))
    assistant = sdk.beta.assistants.create(model=model)
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Talk a lot"}])

    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        streamed = "".join(stream.text_deltas)
        (final,) = stream.get_final_messages()
        run = stream.current_run
    assert run is not None and run.status == "completed", run and run.last_error
    assert streamed == answer and _text(final) == answer
    assert _text(sdk.beta.threads.messages.retrieve(final.id, thread_id=thread.id)) == answer
    listed = sdk.beta.threads.messages.list(thread.id, run_id=run.id).data
    assert [_text(m) for m in listed] == [answer]

    second = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert second.status == "completed"
    said = [m["content"] for m in _model_request(fake_llm, model)["messages"] if m["role"] == "assistant"]
    assert said == [answer]


def _objects_naming(aws: Callable[[str], Any], *ids: str) -> list[str]:
    """Keys in the stack's buckets that name one of ``ids`` (quoted, as item keys are)."""
    s3 = aws("s3")
    keys: list[str] = []
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"], Prefix="t/"):
            keys += [o["Key"] for o in page.get("Contents", []) if any(f"%23{i}/" in o["Key"] for i in ids)]
    return keys


def test_deleting_what_holds_large_values_deletes_them_from_s3(
    aws: Callable[[str], Any], client: OpenAI, model: str
) -> None:
    big = "x" * 300_000
    assistant = client.beta.assistants.create(model=model, instructions=big[:MAX_INSTRUCTIONS])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": big}])
    message = client.beta.threads.messages.create(thread.id, role="user", content=big)
    (first,) = [m for m in client.beta.threads.messages.list(thread.id).data if m.id != message.id]
    assert len(_objects_naming(aws, assistant.id, message.id, first.id)) == 3

    assert client.beta.threads.messages.delete(message.id, thread_id=thread.id).deleted
    assert _objects_naming(aws, message.id) == []
    assert client.beta.threads.delete(thread.id).deleted
    assert client.beta.assistants.delete(assistant.id).deleted
    assert _objects_naming(aws, assistant.id, thread.id, first.id) == []


# ------------------------------------------------------------------ a run that cannot be saved


def _oversize(stack: Stack, marker: str, times: int) -> None:
    """Make the emulated DynamoDB refuse, as too large, each write of a value holding ``marker``."""
    response = httpx.post(f"{stack.aws_endpoint}/_local/faults", json={"dynamodb_oversize": marker, "times": times})
    assert response.status_code == 200, response.text


def test_a_run_that_cannot_be_saved_ends_failed_and_frees_its_thread(
    stack: Stack, client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    """Whatever the reason a run's doc cannot be written (here: every write of it is refused as
    too large), the run still ends ``failed`` with ``last_error`` and its thread takes new work."""
    marker = f"UNSAVABLE-{time.time_ns()}"
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    script(fake_llm, model, text("Too late.", delay=3))
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, additional_instructions=marker)
    wait_for(client, thread.id, created.id, {"in_progress"})
    _oversize(stack, marker, 1000)  # from now on, no write of this run's doc gets through
    try:
        run = wait_for(client, thread.id, created.id, TERMINAL, timeout=60)
    finally:
        _oversize(stack, marker, 0)
    assert run.status == "failed" and run.failed_at is not None
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert run.instructions == ""  # the minimal doc: what made it unsavable is dropped

    client.beta.threads.messages.create(thread.id, role="user", content="Still there?")  # unlocked
    script(fake_llm, model, text("Yes."))
    after = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert after.status == "completed"
