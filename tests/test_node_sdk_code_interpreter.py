"""OpenAI's Node SDK consumes a streamed code_interpreter run as it did on OpenAI.

tests/node/code_interpreter_stream.mjs streams a run with ``client.beta.threads.runs.stream``
(the npm package ``openai``, installed under .cache/node by ``make .cache/node/.installed``) and
prints the AssistantStream events it emitted, in order, with the final run steps, messages and
run. The SDK accumulates deltas itself (``AssistantStream.accumulateDelta``), so a delta it
cannot merge, or events in an order it does not expect, make the script fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.harness.fake_llm import FakeLLM, Turn, text, tool_calls
from tests.harness.scenario import fake_name

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / ".cache" / "node" / "node_modules"
SCRIPT = ROOT / "tests" / "node" / "code_interpreter_stream.mjs"

CHART = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nprint(6 * 7)"
ANSWER = "The answer is 42, and here is the chart."


def code(call_id: str, source: str, **timing: Any) -> Turn:
    """The model's turn that runs ``source`` (its arguments stream in small pieces)."""
    return tool_calls([(call_id, "python", {"code": source})], args_chunk_size=5, **timing)


def node_sdk() -> str:
    """The node binary, once the SDK is installed; else skip (fail under ``make test``, which
    installs .cache/node and sets DYNAMODB_LOCAL_DIR, as the DynamoDB Local tests do)."""
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not on PATH"
    elif not (NODE_MODULES / "openai" / "package.json").is_file():
        problem = f"the npm package openai is not in {NODE_MODULES}: run `make .cache/node/.installed`"
    if problem is not None:
        if os.environ.get("DYNAMODB_LOCAL_DIR"):
            pytest.fail(f"Node SDK unavailable: {problem}", pytrace=False)
        pytest.skip(f"Node SDK unavailable: {problem}")
    assert node is not None
    return node


def stream_with_node(stack: Stack, api_key: str, model: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "BASE_URL": f"{stack.url}/v1",
        "API_KEY": api_key,
        "MODEL": model,
        "NODE_MODULES_DIR": str(NODE_MODULES),
    }
    done = subprocess.run(
        [node_sdk(), str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"the Node SDK failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_node_sdk_streams_code_its_outputs_a_chart_and_the_answer(
    stack: Stack, fake_llm: FakeLLM, model: str, api_key: str
) -> None:
    node_sdk()  # skip before scripting the fake model
    # 20 pieces a second: slower than the 100 ms in which the agent batches deltas.
    fake_llm.script(fake_name(model), [code("call_chart", CHART, tps=20), text(ANSWER)])

    result = stream_with_node(stack, api_key, model)

    events = result["events"]
    names = [e["event"] for e in events]
    assert events[0] == {"event": "toolCallCreated", "type": "code_interpreter"}, events[:3]
    inputs = [i for i, e in enumerate(events) if e["event"] == "toolCallDelta" and "input" in e]
    assert "".join(events[i]["input"] for i in inputs) == CHART
    assert len(inputs) > 1  # streamed as the model wrote it, not at once
    outputs = [(i, o) for i, e in enumerate(events) if e["event"] == "toolCallDelta" for o in e.get("outputs", [])]
    logs = [i for i, o in outputs if o == {"type": "logs", "logs": "42\n"}]
    images = [(i, o["file_id"]) for i, o in outputs if o["type"] == "image"]
    assert logs and logs[0] > inputs[-1], outputs
    assert len(images) == 1 and images[0][0] > inputs[-1], outputs
    assert "toolCallDone" in names
    assert "runStepDelta" in names
    assert "".join(e["value"] for e in events if e["event"] == "textDelta") == ANSWER

    (step,) = [s for s in result["finalRunSteps"] if s["step_details"]["type"] == "tool_calls"]
    (call,) = step["step_details"]["tool_calls"]
    assert call["type"] == "code_interpreter" and call["code_interpreter"]["input"] == CHART
    (step_image,) = [o["image"]["file_id"] for o in call["code_interpreter"]["outputs"] if o["type"] == "image"]
    image_done = [e["file_id"] for e in events if e["event"] == "imageFileDone"]
    assert image_done == [step_image] == [images[0][1]]
    assert [e["content"] for e in events if e["event"] == "messageDone"] == [["text", "image_file"]]

    (message,) = result["finalMessages"]
    assert [part["type"] for part in message["content"]] == ["text", "image_file"]
    assert message["content"][0]["text"]["value"] == ANSWER
    assert message["content"][1]["image_file"]["file_id"] == step_image
    assert result["finalRun"]["status"] == "completed", result["finalRun"].get("last_error")
