"""Typical runs, driven as users drive them, and what each counted on the local stack.

Every run is what a user's request costs: a thread created with the user's message, the run
streamed through the official SDK (``runs.stream``), and where the model calls a function,
``submit_tool_outputs_stream`` with the output. The scripted fake model answers (a 30 s answer
is 1,500 tokens at 50 a second). The stack runs with ``LOCAL_METER=1`` on DynamoDB Local (which
reports consumed capacity as DynamoDB does); before a scenario's measured runs its setup and
one unmeasured run warm every function, then the meter is reset. Counted then:

- by the stack (:mod:`local.meter`): API Gateway requests, each Lambda invocation's duration,
  DynamoDB units, S3 requests and bytes, S3 Vectors writes and queries, AgentCore sessions;
- here: each run's state transitions, from its execution's history in the emulated Step
  Functions (every state entered, plus each retry), and the DynamoDB bytes the runs left
  (the tenant's items, sized by DynamoDB's rules).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from openai import OpenAI

from local import template as cfn
from local.lambda_runtime import free_port
from local.stack import tenant_for_open_key
from tests.bench import STACK_CREDENTIALS as CREDENTIALS
from tests.bench import start_dynamodb_local
from tests.cost.model import Counts
from tests.harness.fake_llm import FakeLLM, Turn, text, tool_calls
from tests.harness.scenario import WEATHER_TOOL

TTFT = 0.3  # s, the fake model's time to its first token
TPS = 50.0  # its tokens a second when paced
DOCUMENT = (
    "# The Zorblax reactor\n\nThe Zorblax reactor of the Quendel station is cooled by liquid gallium at 412 "
    "kelvin. Its core was commissioned in 2091 by the engineer Ilse Varrow.\n"
) * 8


def answer(seconds: float) -> Turn:
    """A text answer streamed over about ``seconds`` at TPS tokens a second."""
    tokens = max(1, int(seconds * TPS))
    return text(" ".join(f"word{i}" for i in range(tokens)), ttft=TTFT, tps=TPS)  # litellm stops a repeating model


@dataclass
class Scenario:
    name: str
    title: str
    runs: int
    turns: Callable[[int], list[Turn]]  # the fake model's turns for run i
    tools: list[dict[str, Any]] = field(default_factory=list)
    file_search: bool = False
    question: str = "Hello!"


def scenarios(quick: bool = False) -> list[Scenario]:
    """The runs ``make cost`` prices; ``quick`` keeps only the short answer (the end-to-end test)."""
    short = Scenario("short", "short answer (20 tokens)", 5, lambda i: [answer(0.4)])
    if quick:
        return [Scenario("short", short.title, 2, short.turns)]
    weather = [tool_calls([("call_w", "get_weather", {"city": "Paris"})], ttft=TTFT)]
    search = [tool_calls([("call_fs", "file_search", {"queries": ["Zorblax reactor coolant"]})], ttft=TTFT)]
    code = [tool_calls([("call_py", "python", {"code": "x = 6 * 7\nprint('x is', x)"})], ttft=TTFT)]
    return [
        short,
        Scenario("stream30", "30 s streamed answer", 2, lambda i: [answer(30)]),
        Scenario("tool", "one tool round, short answer", 5, lambda i: [*weather, answer(0.4)], tools=[WEATHER_TOOL]),
        Scenario(
            "stream30_tool",
            "30 s stream with one tool round (the target)",
            2,
            lambda i: [*weather, answer(30)],
            tools=[WEATHER_TOOL],
        ),
        Scenario(
            "file_search",
            "file_search, short answer",
            3,
            lambda i: [*search, answer(0.4)],
            tools=[{"type": "file_search"}],
            file_search=True,
            question="What cools the Zorblax reactor?",
        ),
        Scenario(
            "code_interpreter",
            "code_interpreter, short answer",
            3,
            lambda i: [*code, answer(0.4)],
            tools=[{"type": "code_interpreter"}],
        ),
    ]


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    url: str
    aws_endpoint: str
    dynamodb_endpoint: str
    fake: FakeLLM

    def aws(self, service: str) -> Any:
        endpoint = self.dynamodb_endpoint if service == "dynamodb" else self.aws_endpoint
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=cfn.REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def meter(self, reset: bool = False) -> dict[str, Any]:
        response = httpx.request("DELETE" if reset else "GET", f"{self.url}/_local/meter", timeout=30)
        response.raise_for_status()
        return dict(response.json())


@contextmanager
def local_stack(workdir: Path, settings: dict[str, str] | None = None) -> Iterator[Stack]:
    """The fake model, DynamoDB Local with the template's tables, and the metered local stack."""
    from tests.conftest import start_local_stack, stop

    with FakeLLM(ttft=TTFT, tps=TPS) as fake, start_dynamodb_local() as dynamodb:
        aws_port = free_port()
        env = {
            **CREDENTIALS,
            "LOCAL_METER": "1",
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "x",
            "ASSISTANTS_API_KEYS": "",
            "LOCAL_AWS_PORT": str(aws_port),
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.endpoint_url,
            **(settings or {}),
        }
        try:
            process, url = start_local_stack(workdir / "local-stack.log", env)
        except RuntimeError:  # a loaded machine: once more, with the first one's log kept
            (workdir / "local-stack.log").rename(workdir / "local-stack.first.log")
            process, url = start_local_stack(workdir / "local-stack.log", env)
        try:
            yield Stack(url, f"http://127.0.0.1:{aws_port}", dynamodb.endpoint_url, fake)
        finally:
            stop(process)


# ---------------------------------------------------------------- one scenario


def run_once(client: OpenAI, stack: Stack, scenario: Scenario, model: str, assistant_id: str, index: int) -> str:
    """One run as a user makes it; returns its id once its stream ended."""
    stack.fake.script(model.split("/", 1)[1], scenario.turns(index))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": scenario.question}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        run = last_run(stream)
    while run.status == "requires_action":  # the tool round: the client runs its function, streams the rest
        assert run.required_action is not None
        calls = run.required_action.submit_tool_outputs.tool_calls
        outputs = [{"tool_call_id": call.id, "output": "sunny, 21 C"} for call in calls]
        with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=run.id, tool_outputs=outputs
        ) as stream:
            run = last_run(stream)
    if run.status != "completed":
        raise RuntimeError(f"{scenario.name}: run {run.id} ended {run.status}: {run.last_error}")
    return str(run.id)


def last_run(stream: Any) -> Any:
    """The run as the stream's last ``thread.run.*`` event left it (no extra request to the API)."""
    run = None
    for event in stream:
        if event.event.startswith("thread.run.") and not event.event.startswith("thread.run.step"):
            run = event.data
    if run is None:
        raise RuntimeError("the stream sent no run event")
    return run


def transitions(stack: Stack, run_ids: list[str], deadline: float = 30.0) -> int:
    """State transitions of the runs' executions: each state entered, and each retry."""
    sfn = stack.aws("stepfunctions")
    machine = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if "Run" in m["name"])
    total = 0
    for run_id in run_ids:
        arn = machine.replace(":stateMachine:", ":execution:") + ":" + run_id
        end = time.monotonic() + deadline
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            if time.monotonic() > end:
                raise RuntimeError(f"execution {run_id} still running after {deadline} s")
            time.sleep(0.1)
        total += count_transitions(sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])
    return total


def count_transitions(events: list[dict[str, Any]]) -> int:
    """Step Functions bills each state entered and each retry of a task (its scheduling again
    within one state entry)."""
    entered = sum(1 for e in events if e["type"].endswith("StateEntered"))
    scheduled = sum(1 for e in events if e["type"] in ("TaskScheduled", "LambdaFunctionScheduled"))
    tasks = sum(1 for e in events if e["type"] == "TaskStateEntered")
    return entered + max(0, scheduled - tasks)


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules, plus the 100 bytes of overhead storage bills."""
    return 100 + sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def value_bytes(value: dict[str, Any]) -> int:
    kind, data = next(iter(value.items()))
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return (len(data.lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(value_bytes({"N": n}) for n in data)
    if kind == "L":
        return 3 + sum(1 + value_bytes(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_bytes(v) for k, v in data.items())
    return len(json.dumps(data))


def tenant_bytes(stack: Stack, tenant: str) -> int:
    """What the tenant's items take in the table (scanned behind the API, not metered)."""
    pages = stack.aws("dynamodb").get_paginator("scan").paginate(TableName="AssistantsTable")
    prefix = f"T#{tenant}"
    return sum(
        item_bytes(item)
        for page in pages
        for item in page["Items"]
        if item.get("PK", {}).get("S", "").startswith(prefix)
    )


def measure(stack: Stack, scenario: Scenario) -> Counts:
    """Set the scenario up, warm it with one run, then count ``scenario.runs`` runs."""
    key = f"sk-cost-{uuid.uuid4().hex}"
    client = OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=120)
    model = f"openai/cost-{scenario.name}-{uuid.uuid4().hex[:8]}"
    extra: dict[str, Any] = {}
    stack.meter(reset=True)
    if scenario.file_search:
        store = client.vector_stores.create(name="cost")
        file = client.files.create(file=("reactor.md", DOCUMENT.encode()), purpose="assistants")
        client.vector_stores.files.create(vector_store_id=store.id, file_id=file.id)
        end = time.monotonic() + 120
        while client.vector_stores.retrieve(store.id).file_counts.in_progress:
            if time.monotonic() > end:
                raise RuntimeError("the cost scenario's file was not ingested in 120 s")
            time.sleep(0.2)
        extra["tool_resources"] = {"file_search": {"vector_store_ids": [store.id]}}
    assistant = client.beta.assistants.create(model=model, instructions="Be brief.", tools=scenario.tools, **extra)  # type: ignore[arg-type]
    run_once(client, stack, scenario, model, assistant.id, -1)  # warm-up: not counted
    setup = stack.meter()
    stored_before = tenant_bytes(stack, tenant_for_open_key(key))
    stack.meter(reset=True)
    run_ids = [run_once(client, stack, scenario, model, assistant.id, i) for i in range(scenario.runs)]
    steps = transitions(stack, run_ids)
    time.sleep(0.5)  # the last stream's function returns after its last byte
    counted = stack.meter()
    return Counts.from_meter(
        scenario.runs,
        counted,
        transitions=steps,
        index_bytes=int(setup.get("vectors", {}).get("put_bytes", 0)),
        dynamodb_bytes_stored=tenant_bytes(stack, tenant_for_open_key(key)) - stored_before,
    )


def measure_all(workdir: Path, chosen: list[Scenario], settings: dict[str, str] | None = None) -> dict[str, Counts]:
    with local_stack(workdir, settings) as stack:
        return {scenario.name: measure(stack, scenario) for scenario in chosen}
