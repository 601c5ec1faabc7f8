"""Cold-start benchmark: per function, a cold start in a fresh process next to a warm invocation.

Run with ``make bench`` (or ``python -m tests.bench_cold [--samples N] [--function NAME ...]``).

One local stack (``tests.conftest.start_local_stack``, moto's DynamoDB) and, when a function
needs a run, the fake LLM (``tests.bench.start_fake``) are started once; what the invocations read
is prepared through the openai SDK (an assistant, a thread with a completed run, a file ingested
into a vector store). Then, for every function of template.yaml, SAMPLES times, a fresh Python
process (``tests.harness.cold_start``) with the function's environment (its template environment
resolved as the local stack does, and the stack's ``AWS_ENDPOINT_URL``) measures:

- import: the handler module's import, its module-level warm-up included;
- first: the first invocation, against the local stack, with an event from ``events/`` (sample
  ids swapped for the prepared ones);
- warm: a second invocation in the same process (the same event, or the agent step's second run);
- peak: the process's peak RSS after the first invocation (VmHWM: see ``cold_start.peak_rss_mb``);
- cold CPU: the process's CPU time (all threads) over the import and the first invocation, which
  a machine shared with other work inflates far less than the wall time.

The median of the samples is reported, and cold (import + first) against the issue's targets:
the agent step within 3 s, each API function (API Gateway's, the authorizer included) within
0.8 s, without SnapStart. Not counted: the interpreter's own start and Lambda's runtime init.

The invocations (see ``INVOCATIONS``): the API functions a read (or, for vector stores, a create)
of the prepared objects; the runs function, which the Lambda Web Adapter serves over HTTP, an
HTTP request to its ASGI app (uvicorn's start not counted); the agent step a real model turn:
both its invocations get a queued run of their own (a thread with a user message, the run
created as ``runs.create`` does but with its execution not started: see
``tests.harness.cold_start --queue-runs``), which it takes through a streamed call to the fake
LLM (``--words 5``, no delay) to ``completed``, so its first invocation is the first turn's
whole path (request, first token, answer, end) and its warm one a second turn; the other Step
Functions tasks (code interpreter, run finalizer) their cheap path, the completed run, which they
read and leave as it is; ingest the file already ingested (skipped); expiry its hourly sweep.

A MISS is reported, not failed: the exit status is non-zero only if the stack cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK flags the Assistants API

from local import template as cfn  # noqa: E402
from local.gateway import gateway_functions  # noqa: E402
from local.lambda_runtime import free_port  # noqa: E402
from local.stack import tenant_for_open_key  # noqa: E402
from tests.bench import MODEL, shut_down, start_fake  # noqa: E402
from tests.conftest import ROOT, start_local_stack  # noqa: E402

SAMPLES = 3
API_KEY = "sk-bench-cold-0123456789"
AGENT_STEP = "AgentStepFunction"
TARGET_AGENT_STEP_S = 3.0
TARGET_API_S = 0.8
# The sample ids of events/*.json, swapped for the prepared objects' (see Prepared.replacements).
SAMPLE_IDS = {
    "tenant": "tenant-sample",
    "key": "sk-sa-sample-0123456789abcdefghijklmnopqrstuv",
    "key_id": "659d659ab73eef96",
    "assistant": "asst_0SAMPLE0abcdefghijklmnop",
    "thread": "thread_0SAMPLE0abcdefghijklmnop",
    "file": "file-0SAMPLE0abcdefghijklmnop",
    "vector_store": "vs_0SAMPLE0abcdefghijklmnop",
}
# Function -> (what it needs prepared, its event: an events/ file, or a Step Functions input).
INVOCATIONS: dict[str, tuple[set[str], str | dict[str, Any]]] = {
    "AuthorizerFunction": (set(), "authorizer"),
    "AssistantsFunction": (set(), "assistants-list"),
    "ModelsFunction": (set(), "models-list"),
    "ThreadsFunction": ({"run"}, "threads-get"),
    "MessagesFunction": ({"run"}, "messages-list"),
    "FilesFunction": ({"file"}, "files-content"),
    "VectorStoresFunction": (set(), "vector-stores-create"),
    "RunsFunction": ({"run"}, "runs-list"),  # as an HTTP request (the Web Adapter)
    "AgentStepFunction": ({"queued"}, "queued run"),  # a model turn: see Prepared.queued
    "CodeInterpreterFunction": ({"run"}, {"tenant": "", "thread_id": "", "run_id": "", "event_seq": 0}),
    "RunFinalizerFunction": ({"run"}, {"action": "expire", "tenant": "", "thread_id": "", "run_id": ""}),
    "IngestFunction": ({"file"}, "ingest"),
    "ExpiryFunction": (set(), "expiry"),
}
HTTP_FUNCTIONS = {"RunsFunction"}  # served over HTTP by the Lambda Web Adapter, not invoked with the event


@dataclass
class Row:
    function: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""  # why there is no invocation ("n/a")
    target_s: float | None = None

    def median(self, key: str) -> float | None:
        values = [s[key] for s in self.samples if key in s]
        return statistics.median(values) if values else None

    @property
    def cold_s(self) -> float | None:
        imported, first = self.median("import_s"), self.median("first_ms")
        return None if imported is None or first is None else imported + first / 1000

    @property
    def cold_cpu_s(self) -> float | None:
        imported, first = self.median("import_cpu_s"), self.median("first_cpu_ms")
        return None if imported is None or first is None else imported + first / 1000

    @property
    def status(self) -> str:
        firsts = sorted({str(s.get("first_status")) for s in self.samples if "first_status" in s})
        return "/".join(firsts)

    @property
    def verdict(self) -> str:
        if self.target_s is None:
            return ""
        if self.cold_s is None:
            return "n/a"
        return "met" if self.cold_s <= self.target_s else "MISS"


@dataclass
class Prepared:
    tenant: str
    ids: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # fixture -> why it could not be prepared
    # The agent step's task inputs for queued runs, two per sample (first and warm invocation).
    queued: list[dict[str, Any]] = field(default_factory=list)

    def replacements(self) -> dict[str, str]:
        values = {"tenant": self.tenant, "key": API_KEY, "key_id": _key_id(API_KEY), **self.ids}
        return {SAMPLE_IDS[name]: value for name, value in values.items() if name in SAMPLE_IDS}


def _key_id(api_key: str) -> str:
    from assistants_core.api_keys import key_id

    return key_id(api_key)  # as the authorizer's context says


def prepare(stack_url: str, needs: set[str]) -> Prepared:
    """The objects the invocations read, made through the openai SDK as a user would."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{stack_url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    prepared = Prepared(tenant=tenant_for_open_key(API_KEY))
    client.models.list()  # the gateway stores the open key (auto tenant): the authorizer finds it
    if needs & {"run", "queued"}:
        try:
            assistant = client.beta.assistants.create(model=MODEL, name="cold start")
            prepared.ids.update(assistant=assistant.id)
        except Exception as error:
            prepared.problems["run"] = prepared.problems["queued"] = f"no assistant: {str(error)[:120]}"
    if "run" in needs and "run" not in prepared.problems:
        try:
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=prepared.ids["assistant"], poll_interval_ms=200
            )
            if run.status != "completed":
                raise RuntimeError(f"the run ended {run.status}: {run.last_error}")
            prepared.ids.update(thread=thread.id, run=run.id)
        except Exception as error:
            prepared.problems["run"] = f"no completed run: {str(error)[:120]}"
    if "file" in needs:
        try:
            text = b"Cold starts are measured in a fresh process.\n" * 20
            file = client.files.create(file=("cold.txt", text, "text/plain"), purpose="assistants")
            store = client.vector_stores.create(name="cold start")
            ingested = client.vector_stores.files.create_and_poll(
                vector_store_id=store.id, file_id=file.id, poll_interval_ms=500
            )
            if ingested.status != "completed":
                raise RuntimeError(f"the file's ingestion ended {ingested.status}: {ingested.last_error}")
            prepared.ids.update(file=file.id, vector_store=store.id)
        except Exception as error:
            prepared.problems["file"] = f"no ingested file: {str(error)[:120]}"
    return prepared


def queue_runs(prepared: Prepared, count: int, env: dict[str, str], workdir: Path) -> None:
    """``count`` queued runs of the prepared assistant, each on a new thread with a user message,
    their executions not started (``tests.harness.cold_start --queue-runs``, in a process with
    the agent step's environment): the agent step's invocations take them as first turns."""
    from openai import OpenAI

    try:
        client = OpenAI(base_url=f"{env['BENCH_STACK_URL']}/v1", api_key=API_KEY, max_retries=0, timeout=120)
        threads = [client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}]) for _ in range(count)]
        path = workdir / "queued-runs.json"
        wanted = [
            {"tenant": prepared.tenant, "thread_id": t.id, "assistant_id": prepared.ids["assistant"]} for t in threads
        ]
        path.write_text(json.dumps(wanted))
        with open(workdir / "queued-runs.log", "wb") as log:
            subprocess.run(
                [sys.executable, "-m", "tests.harness.cold_start", "--function", AGENT_STEP, "--queue-runs", str(path)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=True,
            )
        prepared.queued = json.loads(path.read_text())
    except Exception as error:
        prepared.problems["queued"] = f"no queued runs: {str(error)[:120]}"


def event_for(name: str, prepared: Prepared, index: int = 0) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The function's events for sample ``index`` (the first invocation's, and the warm one's when
    it differs), with the prepared ids; ``{}`` when it cannot be prepared."""
    needs, source = INVOCATIONS[name]
    if any(need in prepared.problems for need in needs):
        return {}, None
    if "queued" in needs:  # two runs of its own per sample: both invocations are model turns
        return prepared.queued[2 * index], prepared.queued[2 * index + 1]
    return _event(name, source, prepared), None


def _event(name: str, source: str | dict[str, Any], prepared: Prepared) -> dict[str, Any]:
    if isinstance(source, dict):  # a Step Functions task's input
        ids = {"tenant": prepared.tenant, "thread_id": prepared.ids["thread"], "run_id": prepared.ids["run"]}
        return {key: ids.get(key, value) for key, value in source.items()}
    text = (ROOT / "events" / f"{source}.json").read_text()
    for sample, value in prepared.replacements().items():
        text = text.replace(sample, value)
    event: dict[str, Any] = json.loads(text)
    if name in HTTP_FUNCTIONS:  # what the Web Adapter sends the app: the request, its context as a header
        headers = {"accept": "application/json", "x-amzn-request-context": json.dumps(event["requestContext"])}
        return {"http": {"method": event["httpMethod"], "path": event["path"], "headers": headers}}
    return event


def sample(
    name: str,
    events: tuple[dict[str, Any], dict[str, Any] | None],
    env: dict[str, str],
    workdir: Path,
    index: int,
) -> dict[str, Any]:
    """One cold start of ``name`` in a fresh process; its figures (or ``error``)."""
    event_path = workdir / f"{name}-{index}.event.json"
    out_path = workdir / f"{name}-{index}.json"
    event_path.write_text(json.dumps(events[0]))
    warm = []
    if events[1] is not None:
        warm_path = workdir / f"{name}-{index}.warm-event.json"
        warm_path.write_text(json.dumps(events[1]))
        warm = ["--warm-event", str(warm_path)]
    with open(workdir / f"{name}-{index}.log", "wb") as log:
        process = subprocess.run(
            [sys.executable, "-m", "tests.harness.cold_start", "--function", name]
            + ["--event", str(event_path), "--out", str(out_path), *warm],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    if process.returncode != 0 or not out_path.exists():
        tail = (workdir / f"{name}-{index}.log").read_text(errors="replace").strip().splitlines()[-1:]
        return {"error": f"exit {process.returncode}: {' '.join(tail)[:160]}"}
    figures: dict[str, Any] = json.loads(out_path.read_text())
    return figures


def function_env(stack_env: dict[str, str], aws_endpoint: str) -> dict[str, str]:
    """What a function's process starts with: what the local stack gives its functions (see
    ``local.stack.build``); the template environment is applied in the process itself."""
    env = {**os.environ, **stack_env}
    env.update(
        {
            "PYTHONPATH": f"{ROOT / 'layers' / 'core' / 'python'}{os.pathsep}{ROOT}",
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": cfn.REGION,
            "AWS_REGION": cfn.REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            # The targets are without SnapStart: a SnapStart function's local init would run its
            # before-snapshot hooks (the agent step's loads litellm there, for the snapshot).
            "LOCAL_PARAMETERS": ",".join(filter(None, [os.environ.get("LOCAL_PARAMETERS", ""), "SnapStart=Disabled"])),
        }
    )
    return env


def measure(names: list[str], samples: int, workdir: Path) -> list[Row]:
    """Start what the functions need, then ``samples`` cold starts of each; the rows, in order."""
    template = cfn.load_template()
    specs = cfn.functions(template)
    api = gateway_functions(template, specs)
    needs = set().union(*(INVOCATIONS[name][0] for name in names if name in INVOCATIONS))
    fake: subprocess.Popen[bytes] | None = None
    stack: subprocess.Popen[bytes] | None = None
    stack_env = {"ASSISTANTS_API_KEYS": "", "OPENAI_API_KEY": "x", "LOCAL_AWS_PORT": str(free_port())}
    try:
        if needs & {"run", "queued"}:
            fake, fake_url = start_fake(workdir / "fake-llm.log", "--words", "5")
            stack_env["OPENAI_BASE_URL"] = fake_url
        stack, stack_url = start_local_stack(workdir / "local-stack.log", stack_env)
        prepared = prepare(stack_url, needs)
        env = function_env(stack_env, f"http://127.0.0.1:{stack_env['LOCAL_AWS_PORT']}")
        if "queued" in needs and "queued" not in prepared.problems:
            queue_runs(prepared, 2 * samples, {**env, "BENCH_STACK_URL": stack_url}, workdir)
        rows = []
        for name in names:
            target = TARGET_AGENT_STEP_S if name == AGENT_STEP else TARGET_API_S if name in api else None
            row = Row(name, target_s=target)
            if name not in INVOCATIONS:
                row.reason = "no representative event known to tests/bench_cold.py"
            else:
                missing = [prepared.problems[need] for need in INVOCATIONS[name][0] if need in prepared.problems]
                row.reason = "; ".join(missing)
            for index in range(samples):
                events = ({}, None) if row.reason else event_for(name, prepared, index)
                figures = sample(name, events, env, workdir, index)
                if "error" in figures:
                    row.reason = figures["error"]
                    break
                row.samples.append(figures)
            print(f"  {name}: {len(row.samples)} sample(s) {row.reason}", flush=True)
            rows.append(row)
        return rows
    finally:
        shut_down(stack, fake)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(rows: list[Row], samples: int) -> None:
    print(f"\nCold start per function (median of {samples} fresh processes, {os.cpu_count()} cores)\n")
    header = ("function", "import+warm-up s", "first ms", "warm ms", "peak MB", "cold s", "cold CPU s", "target", "")
    lines = [header]
    for row in rows:
        target = f"<= {row.target_s:g} s" if row.target_s is not None else "-"
        lines.append(
            (
                row.function,
                _fmt(row.median("import_s"), ".2f"),
                _fmt(row.median("first_ms"), ".0f"),
                _fmt(row.median("warm_ms"), ".0f"),
                _fmt(row.median("peak_mb"), ".0f"),
                _fmt(row.cold_s, ".2f"),
                _fmt(row.cold_cpu_s, ".2f"),
                target,
                row.verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * width for width in widths))
    print("\n  cold = import+warm-up + first invocation; the interpreter's start and Lambda's init are not in it.")
    print("  cold CPU = the CPU time of the same (all threads): on a busy machine, closer to an idle one's cold.")
    print(f"  targets (issue 11, without SnapStart): agent step <= {TARGET_AGENT_STEP_S:g} s, API functions")
    print(f"  <= {TARGET_API_S:g} s each. What each first invocation answered:")
    for row in rows:
        note = row.status if row.samples and row.status else ""
        print(f"    {row.function}: {note or 'n/a'}{' - ' + row.reason if row.reason else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=SAMPLES, help="fresh processes per function")
    parser.add_argument("--function", action="append", help="only this function (logical id); repeatable")
    args = parser.parse_args(argv)
    names = args.function or list(cfn.functions(cfn.load_template()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    print(f"Cold-start benchmark ({os.cpu_count()} cores; logs in {workdir})", flush=True)
    began = time.perf_counter()
    try:
        rows = measure(names, args.samples, workdir)
    except Exception as error:
        print(f"the local stack could not start or be prepared: {error}", file=sys.stderr)
        return 2
    report(rows, args.samples)
    print(f"\n(total {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
