"""code_interpreter when things go wrong, and what must not leak: end to end on the local stack.

A session that cannot start, one that ended between calls, a thread deleted, a run cancelled
while its code runs; tenants' sessions kept apart, no credentials in the sandbox; and the
streamed events of a code step checked against OpenAI's spec. The emulated AgentCore fails
operations on demand (``POST /_local/faults``) and is reachable with boto3 (``aws``) to stop and
inspect sessions; the thread's session is read from its item in DynamoDB.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.beta.threads import FilePathAnnotation, TextContentBlock

from local.stack import tenant_for_open_key
from tests.conftest import Stack
from tests.harness.fake_llm import FakeLLM, text
from tests.harness.scenario import TERMINAL, assert_valid_stream, fake_name, sent, wait_for
from tests.harness.sse import post_sse
from tests.test_code_interpreter_runs import ask, code, code_calls, coder, run_to_end, tool_output

TABLE = "AssistantsTable"
INTERPRETER = "aws.codeinterpreter.v1"
SESSION_ENDED = "the earlier Python session had ended"  # in calls.SESSION_ENDED_NOTE


def thread_item(aws: Callable[[str], Any], api_key: str, thread_id: str) -> dict[str, Any]:
    key = {"PK": {"S": f"T#{tenant_for_open_key(api_key)}#THREAD#{thread_id}"}, "SK": {"S": "THREAD"}}
    item: dict[str, Any] = aws("dynamodb").get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    return item


def code_session(aws: Callable[[str], Any], api_key: str, thread_id: str) -> dict[str, Any]:
    """The thread's session as the thread item records it: {id, expires_at, files}."""
    recorded: dict[str, Any] = json.loads(thread_item(aws, api_key, thread_id)["code_session"]["S"])
    return recorded


def session_status(aws: Callable[[str], Any], session_id: str) -> str:
    found = aws("bedrock-agentcore").get_code_interpreter_session(
        codeInterpreterIdentifier=INTERPRETER, sessionId=session_id
    )
    return str(found["status"])


@pytest.fixture
def faults(stack: Stack) -> Iterator[Callable[[str, str, int], None]]:
    """Make the next calls of an AgentCore operation fail; every fault is cleared afterwards."""
    injected: set[str] = set()

    def inject(operation: str, error: str, times: int) -> None:
        body = {"operation": operation, "error": error, "times": times}
        response = httpx.post(f"{stack.url}/_local/faults", json=body, timeout=10)
        assert response.status_code == 200, response.text
        injected.add(operation)

    yield inject
    for operation in injected:
        httpx.post(f"{stack.url}/_local/faults", json={"operation": operation, "times": 0}, timeout=10)


# ------------------------------------------------------------------ a session that cannot start


@pytest.mark.parametrize(("error", "times"), [("ServiceQuotaExceededException", 1), ("ThrottlingException", 5)])
def test_a_session_that_cannot_start_fails_the_run_and_frees_the_thread(
    client: OpenAI,
    fake_llm: FakeLLM,
    model: str,
    faults: Callable[[str, str, int], None],
    error: str,
    times: int,
) -> None:
    fake_llm.script(fake_name(model), [code("call_first", "1 + 1"), code("call_again", "2 + 2"), text("It is 4.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Add")
    faults("StartCodeInterpreterSession", error, times)

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "rate_limit_exceeded"
    message = run.last_error.message
    assert "code interpreter" in message.lower() and error in message
    assert len(re.findall(r"[.!?](\s|$)", message)) <= 1 and "\n" not in message, message  # one sentence
    assert run.failed_at is not None and run.completed_at is None
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.status == "failed" and step.last_error is not None
    assert step.last_error.code == "rate_limit_exceeded"
    assert len(sent(fake_llm, model)) == 1  # the model was not asked again
    faults("StartCodeInterpreterSession", error, 0)

    client.beta.threads.messages.create(thread_id, role="user", content="Try again")  # the thread is free
    again = run_to_end(client, thread_id, assistant.id)

    assert again.status == "completed", again.last_error
    assert tool_output(fake_llm, model, "call_again") == "4\n"


def test_a_brief_throttle_on_start_is_retried(
    client: OpenAI, fake_llm: FakeLLM, model: str, faults: Callable[[str, str, int], None]
) -> None:
    fake_llm.script(fake_name(model), [code("call_throttled", "3 * 3"), text("Nine.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Multiply")
    faults("StartCodeInterpreterSession", "ThrottlingException", 2)

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    assert tool_output(fake_llm, model, "call_throttled") == "9\n"


# ------------------------------------------------------------------ a session that ended


def test_a_session_stopped_between_runs_is_replaced_and_the_model_is_told(
    client: OpenAI, api_key: str, fake_llm: FakeLLM, model: str, aws: Callable[[str], Any]
) -> None:
    from tests.harness.retrieval import upload

    file_id = upload(client, "notes.txt", "kept on file\n")
    fake_llm.script(
        fake_name(model),
        [
            code("call_define", "kept = 7\nkept"),
            text("Defined."),
            code("call_after", "print(open('/mnt/data/notes.txt').read())\nkept"),
            text("It is gone."),
        ],
    )
    assistant = coder(client, model)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Define"}],
        tool_resources={"code_interpreter": {"file_ids": [file_id]}},
    )
    assert run_to_end(client, thread.id, assistant.id).status == "completed"
    assert tool_output(fake_llm, model, "call_define", request=1) == "7\n"
    first = code_session(aws, api_key, thread.id)
    assert session_status(aws, first["id"]) == "READY"
    assert first["files"] == {file_id: "notes.txt"}

    aws("bedrock-agentcore").stop_code_interpreter_session(codeInterpreterIdentifier=INTERPRETER, sessionId=first["id"])
    assert session_status(aws, first["id"]) == "TERMINATED"
    client.beta.threads.messages.create(thread.id, role="user", content="Use it")
    run = run_to_end(client, thread.id, assistant.id)

    assert run.status == "completed", run.last_error
    told = tool_output(fake_llm, model, "call_after", request=3)
    assert told.startswith("kept on file\n")  # the thread's file was put back in the new session
    assert "NameError: name 'kept' is not defined" in told
    assert SESSION_ENDED in told
    second = code_session(aws, api_key, thread.id)
    assert second["id"] != first["id"] and session_status(aws, second["id"]) == "READY"
    assert second["files"] == {file_id: "notes.txt"}
    (call,) = code_calls(client, thread.id, run.id)
    assert "NameError" in call.code_interpreter.outputs[0].logs


def test_a_session_near_its_end_is_not_used_for_another_call(
    client: OpenAI, api_key: str, fake_llm: FakeLLM, model: str, aws: Callable[[str], Any]
) -> None:
    """A session about to time out (per the thread's record) is stopped and replaced up front."""
    fake_llm.script(
        fake_name(model),
        [code("call_define", "kept = 7"), text("Defined."), code("call_after", "kept"), text("Gone.")],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Define")
    assert run_to_end(client, thread_id, assistant.id).status == "completed"
    first = code_session(aws, api_key, thread_id)
    # An hour cannot pass in a test: the record says the session ends in a minute.
    ending = {**first, "expires_at": int(time.time()) + 60}
    aws("dynamodb").update_item(
        TableName=TABLE,
        Key={"PK": {"S": f"T#{tenant_for_open_key(api_key)}#THREAD#{thread_id}"}, "SK": {"S": "THREAD"}},
        UpdateExpression="SET code_session = :s",
        ExpressionAttributeValues={":s": {"S": json.dumps(ending)}},
    )
    client.beta.threads.messages.create(thread_id, role="user", content="Use it")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    told = tool_output(fake_llm, model, "call_after", request=3)
    assert "NameError: name 'kept' is not defined" in told and SESSION_ENDED in told
    second = code_session(aws, api_key, thread_id)
    assert second["id"] != first["id"]
    assert session_status(aws, first["id"]) == "TERMINATED"  # stopped, not left to run out


def test_deleting_a_thread_stops_its_session(
    client: OpenAI, api_key: str, fake_llm: FakeLLM, model: str, aws: Callable[[str], Any]
) -> None:
    fake_llm.script(fake_name(model), [code("call_once", "1"), text("One.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Once")
    assert run_to_end(client, thread_id, assistant.id).status == "completed"
    session_id = code_session(aws, api_key, thread_id)["id"]
    assert session_status(aws, session_id) == "READY"

    deleted = client.beta.threads.delete(thread_id)

    assert deleted.deleted is True
    assert session_status(aws, session_id) == "TERMINATED"


# ------------------------------------------------------------------ isolation


def test_tenants_do_not_share_sessions_variables_or_files(
    client: OpenAI,
    api_key: str,
    other_client: OpenAI,
    fake_llm: FakeLLM,
    model: str,
    aws: Callable[[str], Any],
) -> None:
    other_model = f"{model}-b"
    write = "secret_value = 'tenant A only'\nopen('/mnt/data/secret.txt', 'w').write('top secret')"
    fake_llm.script(
        fake_name(model), [code("call_a", write), text("Saved [secret.txt](sandbox:/mnt/data/secret.txt).")]
    )
    probe = "import os\nprint(os.listdir('/mnt/data'))\nsecret_value"
    fake_llm.script(fake_name(other_model), [code("call_b", probe), text("Nothing here.")])

    thread_a = ask(client, "Keep a secret")
    run_a = run_to_end(client, thread_a, coder(client, model).id)
    thread_b = ask(other_client, "Find the secret")
    run_b = run_to_end(other_client, thread_b, coder(other_client, other_model).id)

    assert (run_a.status, run_b.status) == ("completed", "completed")
    answer = client.beta.threads.messages.list(thread_a, run_id=run_a.id).data[0].content[0]
    assert isinstance(answer, TextContentBlock)
    (annotation,) = answer.text.annotations
    assert isinstance(annotation, FilePathAnnotation)
    file_id = annotation.file_path.file_id
    assert client.files.content(file_id).read() == b"top secret"  # tenant A has it
    with pytest.raises(openai.NotFoundError):
        other_client.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        other_client.files.content(file_id)
    told = tool_output(fake_llm, other_model, "call_b")
    assert told.startswith("[]\n"), told
    assert "NameError: name 'secret_value' is not defined" in told
    assert "top secret" not in told and "secret.txt" not in told
    session_a = code_session(aws, api_key, thread_a)["id"]
    session_b = code_session(aws, str(other_client.api_key), thread_b)["id"]
    assert session_a != session_b


def test_the_sandbox_has_no_credentials(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    probe = (
        "import os\n"
        "print(sorted(k for k in os.environ if k.startswith(('AWS_', 'OPENAI'))))\n"
        "print(any('fake-llm-key' in v for v in os.environ.values()))"
    )
    fake_llm.script(fake_name(model), [code("call_env", probe), text("Clean.")])
    thread_id = ask(client, "What is in your environment?")

    run = run_to_end(client, thread_id, coder(client, model).id)

    assert run.status == "completed"
    assert tool_output(fake_llm, model, "call_env") == "[]\nFalse\n"


# ------------------------------------------------------------------ the stream of a code step


def test_a_streamed_code_step_matches_the_spec_and_openais_event_order(
    client: OpenAI, http: httpx.Client, fake_llm: FakeLLM, model: str
) -> None:
    source = "import matplotlib.pyplot as plt\nprint('plotting')\nplt.plot([1, 2, 3])\nplt.show()"
    fake_llm.script(fake_name(model), [code("call_plot", source, tps=20), text("Here it is.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Plot")

    stream = post_sse(http, f"/v1/threads/{thread_id}/runs", {"assistant_id": assistant.id, "stream": True})

    assert_valid_stream(stream)
    assert stream.names[-2] == "thread.run.completed"
    step_id = next(d["id"] for d in stream.data("thread.run.step.created") if d["step_details"]["type"] == "tool_calls")
    mine = [(name, data) for name, data in stream.events if isinstance(data, dict) and data.get("id") == step_id]
    names = [name for name, _ in mine]
    deltas = [data["delta"]["step_details"]["tool_calls"] for name, data in mine if name == "thread.run.step.delta"]
    assert names[:2] == ["thread.run.step.created", "thread.run.step.in_progress"]
    assert names[2:] == ["thread.run.step.delta"] * len(deltas) + ["thread.run.step.completed"]
    assert mine[0][1]["step_details"] == {"type": "tool_calls", "tool_calls": []}
    assert mine[0][1]["status"] == "in_progress"

    fragments = [fragment for delta in deltas for fragment in delta]
    assert all(f["index"] == 0 and f["type"] == "code_interpreter" for f in fragments)
    opening = fragments[0]
    assert opening["id"] == "call_plot"
    assert source.startswith(opening["code_interpreter"]["input"])
    assert all("id" not in f for f in fragments[1:])  # the id comes once, in the first fragment
    inputs = [f for f in fragments if "input" in f["code_interpreter"]]
    with_outputs = [i for i, f in enumerate(fragments) if f["code_interpreter"].get("outputs")]
    assert "".join(f["code_interpreter"]["input"] for f in inputs) == source
    assert len(inputs) > 1  # streamed as the model wrote it
    assert len(with_outputs) == 1 and with_outputs[0] > fragments.index(inputs[-1])
    outputs = fragments[with_outputs[0]]["code_interpreter"]["outputs"]
    assert [(o["index"], o["type"]) for o in outputs] == [(0, "logs"), (1, "image")]
    assert outputs[0]["logs"] == "plotting\n" and outputs[1]["image"]["file_id"].startswith("file-")

    completed = mine[-1][1]
    assert completed["status"] == "completed" and completed["completed_at"] is not None
    (call,) = completed["step_details"]["tool_calls"]
    assert call["id"] == "call_plot" and call["type"] == "code_interpreter"
    assert call["code_interpreter"]["input"] == source
    assert call["code_interpreter"]["outputs"] == [{k: v for k, v in o.items() if k != "index"} for o in outputs]


# ------------------------------------------------------------------ cancel


def test_cancelling_a_run_while_its_code_runs(
    client: OpenAI, api_key: str, fake_llm: FakeLLM, model: str, aws: Callable[[str], Any]
) -> None:
    fake_llm.script(
        fake_name(model),
        [
            code("call_slow", "import time\ntime.sleep(8)\n'slept'"),
            code("call_next", "'after the cancel'"),
            text("Back."),
        ],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Take your time")
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    # The session is recorded on the thread just before the code is sent to it: a moment later,
    # the code is sleeping.
    deadline = time.monotonic() + 30
    while "code_session" not in thread_item(aws, api_key, thread_id):
        assert time.monotonic() < deadline, "the code never started"
        time.sleep(0.1)
    time.sleep(1)

    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    asked_at = time.monotonic()
    cancelled = wait_for(client, thread_id, run.id, TERMINAL, timeout=10)

    assert cancelling.status == "cancelling"
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert time.monotonic() - asked_at < 5  # the cancel does not wait for the code
    (step,) = client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data
    assert step.type == "tool_calls" and step.status == "cancelled"
    client.beta.threads.messages.create(thread_id, role="user", content="Next")  # the thread is free
    again = run_to_end(client, thread_id, assistant.id)

    assert again.status == "completed", again.last_error
    assert tool_output(fake_llm, model, "call_next") == "'after the cancel'\n"
    assert len(sent(fake_llm, model)) == 3  # the cancelled run never went back to the model
    # The cancelled run's code has finished by now (the new call waited for it): nothing of it was recorded.
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread_id).status == "cancelled"
    (slow,) = code_calls(client, thread_id, run.id)
    assert slow.code_interpreter.outputs == []
    assert client.beta.threads.runs.steps.list(run.id, thread_id=thread_id).data[0].status == "cancelled"
    messages = client.beta.threads.messages.list(thread_id, order="asc").data
    assert [m.role for m in messages] == ["user", "user", "assistant"]
