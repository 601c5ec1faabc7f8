"""Code interpreter benchmark: what running the model's code adds to a streamed run.

Run with ``make bench`` (after the other benchmarks) or ``python -m tests.bench_code``.

The local stack and an in-process fake model (no time to first token) run threads whose model
writes one ``python`` call and then answers. The figures are taken from the client's side of the
stream, as a user sees it:

- **code**: from the last ``code_interpreter.input`` delta to the delta with the call's outputs:
  the agent step closing its turn, the state machine's move to RunCode, the session (started on
  the thread's first call, reused on its second), the files and the execution, the outputs
  recorded and read back from the run's log;
- **resume**: from the outputs to the first text delta of the answer: the state machine back to
  the agent step, the next model request and its first token.

Each thread makes two runs: the first starts its session and imports pandas there (cold), the
second reuses both (warm). The sandbox is the local stack's emulation of AgentCore (a Python
worker per session on this machine), so the cold figure is this machine's process start and
imports, not AgentCore's microVM start.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's: the Assistants API is what we serve

from openai import OpenAI  # noqa: E402

from tests.bench import pct  # noqa: E402
from tests.conftest import start_local_stack, stop  # noqa: E402
from tests.harness.fake_llm import FakeLLM, text, tool_calls  # noqa: E402

THREADS = 8
CODE = "import pandas as pd\nlen(pd.DataFrame({'a': [1, 2, 3]}))"
MODEL = "bench-coder"


def timed_run(client: OpenAI, thread_id: str, assistant_id: str) -> dict[str, float]:
    """One streamed run; the code and resume intervals of its python call, in ms."""
    last_input = outputs = answer = None
    with client.beta.threads.runs.create(thread_id, assistant_id=assistant_id, stream=True) as events:
        for event in events:
            now = time.monotonic()
            if event.event == "thread.run.step.delta":
                for call in event.data.delta.step_details.tool_calls or []:  # type: ignore[union-attr]
                    if call.type == "code_interpreter" and call.code_interpreter is not None:
                        if call.code_interpreter.input:
                            last_input = now
                        if call.code_interpreter.outputs and outputs is None:
                            outputs = now
            elif event.event == "thread.message.delta" and outputs is not None and answer is None:
                answer = now
            elif event.event in ("thread.run.failed", "thread.run.expired", "thread.run.incomplete"):
                raise RuntimeError(f"the run ended {event.event}: {json.dumps(event.data.model_dump(), default=str)}")
    if last_input is None or outputs is None or answer is None:
        raise RuntimeError("the stream lacked the code input, its outputs or the answer")
    return {"code": (outputs - last_input) * 1000, "resume": (answer - outputs) * 1000}


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-code-"))
    with FakeLLM() as fake:
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "bench", "ASSISTANTS_API_KEYS": ""}
        process, url = start_local_stack(workdir / "local-stack.log", env)
        try:
            client = OpenAI(base_url=f"{url}/v1", api_key="bench-code")
            assistant = client.beta.assistants.create(model=f"openai/{MODEL}", tools=[{"type": "code_interpreter"}])
            cold: list[dict[str, float]] = []
            warm: list[dict[str, float]] = []
            for n in range(THREADS):
                turns = [tool_calls([(f"call_{n}_{k}", "python", {"code": CODE})]) for k in range(2)]
                fake.script(MODEL, [turns[0], text("Three rows."), turns[1], text("Still three.")])
                thread = client.beta.threads.create(messages=[{"role": "user", "content": "Count the rows"}])
                cold.append(timed_run(client, thread.id, assistant.id))
                client.beta.threads.messages.create(thread.id, role="user", content="Again")
                warm.append(timed_run(client, thread.id, assistant.id))
        finally:
            stop(process)
    print(f"\nCode interpreter benchmark ({THREADS} threads, two runs each, one python call a run; local sandbox)\n")
    print("| interval | session | p50 | p95 | min |")
    print("|---|---|---|---|---|")
    for name in ("code", "resume"):
        for label, runs in (("cold (new session, imports pandas)", cold), ("warm (same session)", warm)):
            values = [r[name] for r in runs]
            print(
                f"| {name} | {label} | {statistics.median(values):,.0f} ms | {pct(values, 95):,.0f} ms"
                f" | {min(values):,.0f} ms |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
