"""code_interpreter inside runs, end to end: the official SDK against the local stack.

The fake model plays a model that writes code: it calls the ``python`` function it is offered
with the code a test scripts, then answers. The code really runs, in the local stack's
emulation of AgentCore Code Interpreter (a Python worker per session), through the same
adapter, state machine and function as on AWS. What the code printed reaches the model in its
next request, which the tests read back from the fake.
"""

from __future__ import annotations

import json
from typing import Any, override

import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.threads import ImageFile, Message, Text, TextDelta
from openai.types.beta.threads.runs import RunStep, RunStepDelta, ToolCall, ToolCallDelta

from tests.harness.fake_llm import FakeLLM, Turn, text, tool_calls
from tests.harness.retrieval import upload
from tests.harness.scenario import TERMINAL, WEATHER_TOOL, fake_name, sent, wait_for

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def code(call_id: str, source: str, **timing: Any) -> Turn:
    """The model's turn that runs ``source`` (its arguments stream in small pieces)."""
    return tool_calls([(call_id, "python", {"code": source})], args_chunk_size=5, **timing)


def tool_output(fake: FakeLLM, model: str, call_id: str, request: int = -1) -> str:
    """What the model was told a call printed, in its ``request``-th request."""
    messages = sent(fake, model)[request]["messages"]
    return next(m["content"] for m in messages if m.get("role") == "tool" and m.get("tool_call_id") == call_id)


def coder(client: OpenAI, model: str, **kwargs: Any) -> Any:
    return client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}], **kwargs)


def run_to_end(client: OpenAI, thread_id: str, assistant_id: str, **kwargs: Any) -> Any:
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=100, **kwargs
    )
    if run.status not in TERMINAL:
        run = wait_for(client, thread_id, run.id, TERMINAL, timeout=60)
    return run


def code_calls(client: OpenAI, thread_id: str, run_id: str) -> list[Any]:
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc").data
    return [c for s in steps if s.step_details.type == "tool_calls" for c in s.step_details.tool_calls]


def ask(client: OpenAI, question: str) -> str:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": question}])
    return thread.id


# ------------------------------------------------------------------ the canonical path


def test_a_calculation_runs_and_its_logs_reach_the_model_and_the_step(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    fake_llm.script(fake_name(model), [code("call_calc", "x = 6 * 7\nprint('x is', x)\nx + 1"), text("It is 42.")])
    assistant = coder(client, model)
    thread_id = ask(client, "What is 6 times 7?")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    first = sent(fake_llm, model)[0]
    python = next(t for t in first["tools"] if t["function"]["name"] == "python")
    assert "/mnt/data" in python["function"]["description"]
    assert tool_output(fake_llm, model, "call_calc") == "x is 42\n43\n"
    (call,) = code_calls(client, thread_id, run.id)
    assert call.type == "code_interpreter"
    assert call.code_interpreter.input == "x = 6 * 7\nprint('x is', x)\nx + 1"
    assert [o.type for o in call.code_interpreter.outputs] == ["logs"]
    assert call.code_interpreter.outputs[0].logs == "x is 42\n43\n"
    answer = client.beta.threads.messages.list(thread_id, run_id=run.id).data[0]
    assert answer.content[0].type == "text" and answer.content[0].text.value == "It is 42."


class Recorder(AssistantEventHandler):
    """What OpenAI's stream helpers show an application, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, Any]] = []

    @override
    def on_tool_call_created(self, tool_call: ToolCall) -> None:
        self.seen.append(("created", tool_call.type))

    @override
    def on_tool_call_delta(self, delta: ToolCallDelta, snapshot: ToolCall) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter is not None:
            if delta.code_interpreter.input:
                self.seen.append(("input", delta.code_interpreter.input))
            for output in delta.code_interpreter.outputs or []:
                self.seen.append(("output", output.type))

    @override
    def on_tool_call_done(self, tool_call: ToolCall) -> None:
        self.seen.append(("done", tool_call.type))

    @override
    def on_image_file_done(self, image_file: ImageFile) -> None:
        self.seen.append(("image", image_file.file_id))

    @override
    def on_run_step_delta(self, delta: RunStepDelta, snapshot: RunStep) -> None:
        self.seen.append(("step_delta", snapshot.id))

    @override
    def on_message_done(self, message: Message) -> None:
        self.seen.append(("message", message))


def test_a_stream_shows_the_code_as_it_is_written_then_its_outputs(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    source = "total = sum(range(10))\ntotal"
    # 20 pieces a second: slower than the 100 ms in which the agent batches deltas.
    fake_llm.script(fake_name(model), [code("call_sum", source, tps=20), text("The total is 45.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Sum 0..9")
    handler = Recorder()

    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id, event_handler=handler) as s:
        s.until_done()
        final = s.get_final_run()

    assert final.status == "completed"
    kinds = [kind for kind, _ in handler.seen]
    assert kinds[0] == "created" and handler.seen[0][1] == "code_interpreter"
    written = "".join(value for kind, value in handler.seen if kind == "input")
    assert written == source
    assert len([k for k in kinds if k == "input"]) > 1  # streamed as the model wrote it, not at once
    assert kinds.index("output") > max(i for i, k in enumerate(kinds) if k == "input")
    assert "done" in kinds
    steps = s.get_final_run_steps()
    (call,) = [c for step in steps if step.step_details.type == "tool_calls" for c in step.step_details.tool_calls]
    assert call.code_interpreter.outputs[0].logs == "45\n"


# ------------------------------------------------------------------ state, errors and limits


def test_python_state_persists_across_calls_and_runs_in_a_thread(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(
        fake_name(model),
        [
            code("call_define", "secret = 41"),
            code("call_use", "secret + 1"),
            text("Done."),
            code("call_later", "secret * 2"),
            text("Still here."),
        ],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Remember a number")
    first = run_to_end(client, thread_id, assistant.id)
    client.beta.threads.messages.create(thread_id, role="user", content="Double it")
    second = run_to_end(client, thread_id, assistant.id)

    assert (first.status, second.status) == ("completed", "completed")
    assert tool_output(fake_llm, model, "call_use", request=2) == "42\n"
    assert tool_output(fake_llm, model, "call_later", request=4) == "82\n"


def test_an_error_goes_back_to_the_model_which_fixes_the_code(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(
        fake_name(model),
        [code("call_bad", "values = [1, 2, 3]\nvalues[10]"), code("call_fixed", "values[-1]"), text("The last is 3.")],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Last value?")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed"
    told = tool_output(fake_llm, model, "call_bad", request=1)
    assert "IndexError: list index out of range" in told and "values[10]" in told
    assert tool_output(fake_llm, model, "call_fixed", request=2) == "3\n"
    bad, fixed = code_calls(client, thread_id, run.id)
    assert "IndexError" in bad.code_interpreter.outputs[0].logs
    assert fixed.code_interpreter.outputs[0].logs == "3\n"


def test_a_call_past_the_time_limit_is_stopped_and_the_run_goes_on(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    fake_llm.script(
        fake_name(model),
        [
            code("call_slow", "import time\nkept = 'yes'\ntime.sleep(600)"),
            code("call_after", "kept"),
            text("Too slow."),
        ],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Wait forever")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed"
    assert "TimeoutError" in tool_output(fake_llm, model, "call_slow", request=1)
    assert tool_output(fake_llm, model, "call_after", request=2) == "'yes'\n"  # the session survived


# ------------------------------------------------------------------ files in and out


def test_a_chart_becomes_an_image_output_and_an_image_file_after_the_text(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    chart = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\nplt.show()"
    fake_llm.script(fake_name(model), [code("call_chart", chart), text("Here is the chart.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Draw squares")
    handler = Recorder()

    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id, event_handler=handler) as s:
        s.until_done()

    (call,) = code_calls(client, thread_id, s.get_final_run().id)
    images = [o for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    file_id = images[0].image.file_id
    assert client.files.content(file_id).read().startswith(PNG_SIGNATURE)
    assert client.files.retrieve(file_id).purpose == "assistants_output"
    message = client.beta.threads.messages.list(thread_id, order="desc").data[0]
    assert [part.type for part in message.content] == ["text", "image_file"]
    assert message.content[1].image_file.file_id == file_id
    assert ("image", file_id) in handler.seen
    assert "shown to the user" in tool_output(fake_llm, model, "call_chart")


def test_a_csv_from_tool_resources_is_read_from_mnt_data(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    file_id = upload(client, "sales.csv", "region,amount\nnorth,10\nsouth,32\n")
    source = "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint(int(df['amount'].sum()))"
    fake_llm.script(fake_name(model), [code("call_csv", source), text("Sales total 42.")])
    assistant = coder(client, model, tool_resources={"code_interpreter": {"file_ids": [file_id]}})
    thread_id = ask(client, "Total sales?")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    python = next(t for t in sent(fake_llm, model)[0]["tools"] if t["function"]["name"] == "python")
    assert "/mnt/data/sales.csv" in python["function"]["description"]
    assert tool_output(fake_llm, model, "call_csv") == "42\n"


def test_a_written_file_becomes_a_file_path_annotation(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    source = "open('/mnt/data/report.txt', 'w').write('all good\\n')"
    answer = "Your report: [report.txt](sandbox:/mnt/data/report.txt)."
    fake_llm.script(fake_name(model), [code("call_write", source), text(answer)])
    assistant = coder(client, model)
    thread_id = ask(client, "Write a report")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed"
    told = tool_output(fake_llm, model, "call_write")
    assert "sandbox:/mnt/data/report.txt" in told
    message = client.beta.threads.messages.list(thread_id, order="desc").data[0]
    (annotation,) = message.content[0].text.annotations
    assert annotation.type == "file_path"
    assert annotation.text == "sandbox:/mnt/data/report.txt"
    assert answer[annotation.start_index : annotation.end_index] == annotation.text
    assert client.files.content(annotation.file_path.file_id).read() == b"all good\n"


def test_a_file_attached_for_code_interpreter_is_there(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    file_id = upload(client, "notes.txt", "attached words\n")
    fake_llm.script(fake_name(model), [code("call_read", "open('/mnt/data/notes.txt').read()"), text("Read it.")])
    assistant = coder(client, model)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "Read my notes",
                "attachments": [{"file_id": file_id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )

    run = run_to_end(client, thread.id, assistant.id)

    assert run.status == "completed"
    assert tool_output(fake_llm, model, "call_read") == "'attached words\\n'\n"


def test_a_thread_file_is_visible_only_in_that_thread(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    file_id = upload(client, "private.txt", "mine\n")
    probe = "import os\nsorted(os.listdir('/mnt/data'))"
    fake_llm.script(fake_name(model), [code("call_with", probe), text("a"), code("call_without", probe), text("b")])
    assistant = coder(client, model)
    with_file = client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": [file_id]}})
    without = client.beta.threads.create()
    for thread_id in (with_file.id, without.id):
        client.beta.threads.messages.create(thread_id, role="user", content="list")
        assert run_to_end(client, thread_id, assistant.id).status == "completed"

    assert tool_output(fake_llm, model, "call_with", request=1) == "['private.txt']\n"
    assert tool_output(fake_llm, model, "call_without", request=3) == "[]\n"


# ------------------------------------------------------------------ bad input


def test_tool_resources_are_checked(client: OpenAI, other_client: OpenAI, model: str) -> None:
    import openai

    file_id = upload(client, "a.txt", "a")
    theirs = upload(other_client, "b.txt", "b")
    with pytest.raises(openai.BadRequestError):
        coder(client, model, tool_resources={"code_interpreter": {"file_ids": [file_id] * 21}})
    with pytest.raises(openai.NotFoundError) as unknown:
        coder(client, model, tool_resources={"code_interpreter": {"file_ids": ["file-nope"]}})
    assert unknown.value.body["param"] == "tool_resources.code_interpreter.file_ids[0]"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": [theirs]}})
    with pytest.raises(openai.BadRequestError) as clash:
        client.beta.assistants.create(
            model=model,
            tools=[
                {"type": "code_interpreter"},
                {"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}},
            ],
        )
    assert "python" in str(clash.value)


def test_the_python_function_is_offered_only_with_the_tool(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [text("No code here.")])
    assistant = client.beta.assistants.create(model=model)
    thread_id = ask(client, "hi")
    assert run_to_end(client, thread_id, assistant.id, tool_choice="auto").status == "completed"
    assert "tools" not in sent(fake_llm, model)[0] or not sent(fake_llm, model)[0]["tools"]


def test_tool_choice_code_interpreter_names_the_python_function_once(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    fake_llm.script(fake_name(model), [code("call_forced", "1 + 1"), text("Two.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Add")

    run = run_to_end(client, thread_id, assistant.id, tool_choice={"type": "code_interpreter"})

    assert run.status == "completed"
    first, second = sent(fake_llm, model)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "python"}}
    assert second["tool_choice"] == "auto"
    assert json.loads(second["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {"code": "1 + 1"}


def test_a_chart_in_the_history_reaches_the_model_as_text(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    """Providers take images from users only: the next run sees the assistant's chart as a note."""
    chart = "import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])"
    fake_llm.script(fake_name(model), [code("call_chart", chart), text("A chart."), text("Same chart.")])
    assistant = coder(client, model)
    thread_id = ask(client, "Draw")
    assert run_to_end(client, thread_id, assistant.id).status == "completed"
    client.beta.threads.messages.create(thread_id, role="user", content="Again?")

    assert run_to_end(client, thread_id, assistant.id).status == "completed"

    history = sent(fake_llm, model)[2]["messages"]
    (answer,) = [m for m in history if m["role"] == "assistant"]
    assert isinstance(answer["content"], str)
    assert answer["content"].startswith("A chart.\n[image file-") and "shown to the user]" in answer["content"]


def test_a_model_that_keeps_running_code_is_stopped(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    """After ten calls the model is told to answer (tool_choice none); one that runs code anyway
    ends the run failed instead of looping."""
    fake_llm.script(fake_name(model), [code(f"call_{n}", f"{n}") for n in range(11)])
    assistant = coder(client, model)
    thread_id = ask(client, "Count")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    assert "kept running code" in run.last_error.message
    requests = sent(fake_llm, model)
    assert len(requests) == 11
    assert requests[-1]["tool_choice"] == "none" and requests[-2]["tool_choice"] != "none"
    assert len(code_calls(client, thread_id, run.id)) == 11


class LinkWatcher(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.annotations: list[Any] = []

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.annotations += delta.annotations or []


def test_a_link_to_a_written_file_is_annotated_as_the_answer_streams(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    answer = "Saved as sandbox:/mnt/data/out.csv. Also see sandbox:/mnt/data/out.csv.bak (not written)."
    fake_llm.script(
        fake_name(model),
        [code("call_out", "open('/mnt/data/out.csv', 'w').write('a\\n')"), text(answer, chunk_size=4, tps=200)],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Save it")
    handler = LinkWatcher()

    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id, event_handler=handler) as s:
        s.until_done()
        (message,) = s.get_final_messages()

    (streamed,) = handler.annotations
    (final,) = message.content[0].text.annotations
    assert streamed.type == "file_path" and streamed.index == 0
    assert (streamed.start_index, streamed.end_index) == (final.start_index, final.end_index)
    assert answer[final.start_index : final.end_index] == "sandbox:/mnt/data/out.csv"
    assert streamed.file_path.file_id == final.file_path.file_id
    assert client.files.content(final.file_path.file_id).read() == b"a\n"


def test_code_that_kills_its_session_is_told_and_the_next_call_gets_a_new_one(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    fake_llm.script(
        fake_name(model),
        [
            code("call_define", "kept = 1"),
            code("call_kill", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
            code("call_after", "kept"),
            text("Recovered."),
        ],
    )
    assistant = coder(client, model)
    thread_id = ask(client, "Crash it")

    run = run_to_end(client, thread_id, assistant.id)

    assert run.status == "completed", run.last_error
    told = tool_output(fake_llm, model, "call_kill", request=2)
    assert "session ended while this code ran" in told and "variables are gone" in told
    after = tool_output(fake_llm, model, "call_after", request=3)
    assert "NameError: name 'kept' is not defined" in after  # a new session, not the killed one
    killed = code_calls(client, thread_id, run.id)[1]
    assert killed.code_interpreter.outputs[0].type == "logs"


def test_a_runs_tools_override_brings_the_code_interpreter(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    fake_llm.script(fake_name(model), [code("call_override", "3 * 3"), text("Nine.")])
    assistant = client.beta.assistants.create(model=model)  # no tools of its own
    thread_id = ask(client, "Square three")

    run = run_to_end(client, thread_id, assistant.id, tools=[{"type": "code_interpreter"}])

    assert run.status == "completed", run.last_error
    assert [t.type for t in run.tools] == ["code_interpreter"]
    assert tool_output(fake_llm, model, "call_override") == "9\n"


def test_code_and_a_client_function_in_one_turn_run_the_code_then_ask_for_the_output(
    client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    """The service runs the code; the run then waits for the client's function, as OpenAI did."""
    turn = tool_calls([("call_code", "python", {"code": "21 * 2"}), ("call_weather", "get_weather", {"city": "Paris"})])
    fake_llm.script(fake_name(model), [turn, text("42, and sunny.")])
    assistant = client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}, WEATHER_TOOL])
    thread_id = ask(client, "Compute and check the weather")

    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=100, timeout=60
    )

    assert run.status == "requires_action"
    (asked,) = run.required_action.submit_tool_outputs.tool_calls
    assert asked.id == "call_weather"
    calls = {c.id: c for c in code_calls(client, thread_id, run.id)}
    assert calls["call_code"].code_interpreter.outputs[0].logs == "42\n"  # run before the wait
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread_id, tool_outputs=[{"tool_call_id": "call_weather", "output": "sunny"}]
    )
    assert done.status == "completed", done.last_error
    assert tool_output(fake_llm, model, "call_code") == "42\n"
    assert tool_output(fake_llm, model, "call_weather") == "sunny"
