"""Streaming benchmark: what the Assistants API adds on top of the model, at 1 and 20 streams.

Run with ``make bench`` (or ``python -m tests.bench [--dynamodb local|moto]``). All on 127.0.0.1:

- a fake LLM in its own process (the ``tests.harness.fake_llm`` CLI): every answer is ``WORDS``
  tokens, the first ``TTFT`` s after the response headers, then one token every 1/``TPS`` s;
- the local stack (``tests.conftest.start_local_stack``) pointed at it: two processes, the API
  (gateway, API functions, stream polling) and its child, the emulated AWS (moto, Step Functions,
  and the agent step that Step Functions invokes);
- DynamoDB: by default DynamoDB Local (``tests.harness.dynamodb_local``, Java, in its own process),
  which the stack's boto3 (and the emulated Step Functions) reach through
  ``AWS_ENDPOINT_URL_DYNAMODB``, with no code change. Its 2-12 ms per request, whatever the
  table's size, is close to DynamoDB's own latency, and its CPU is not the stack's.
  ``--dynamodb moto`` keeps moto's DynamoDB instead, in the emulated AWS process, where every
  stream's Query every 20 ms competes with the agent turns for one GIL: that measures the
  emulator more than the app;
- this process is the client: the official openai SDK, ``AsyncOpenAI`` with
  ``client.beta.threads.runs.stream`` (the helper users call), all streams on one event loop.

Per streamed run (each on its own thread, created beforehand):

- t_send: just before the SDK sends ``POST /v1/threads/{id}/runs`` (stream: true);
- t_first: the first ``thread.message.delta`` out of the SDK stream;
- t_done: ``thread.message.completed`` out of the SDK stream.

- overhead = (t_first - t_send) - upstream ttft. The upstream ttft is the fake's time to first
  token as measured here before the runs (raw HTTP, request sent -> first content chunk, median
  of CALIBRATION_RUNS); the table shows it next to the configured TTFT and to litellm's figure.
- throughput ratio = delivered rate / TPS, delivered rate = (tokens received after the first
  delta) / (t_done - t_first). Tokens are counted in the delivered text the way the fake splits
  its answer. Upstream those tokens take (WORDS - 1) / TPS s, so the ratio is that window over
  the observed one: 1.0 = text reached the client as fast as the model produced it.

Concurrency 1 and 20 are INTERLEAVED: ROUNDS times, C1_RUNS sequential runs, then 20 concurrent
workers (closed loop, starts spread over one run's length, C20_RUNS_PER_WORKER runs each), so the
machine's drift affects both alike. Warm-up runs (cold starts, pools, JIT) are not measured.

Controls, so the figures can be trusted: the fake alone (raw HTTP and litellm, at 1 and 20
streams); during every phase a stream straight to the fake (its ttft error and rate ratio show
whether the fake and this client keep time under the same load); this event loop's lag; CPU used
by our processes and by everything else on the machine.

Reading the figures: the local stack is two Python processes on this machine's cores, the API
(every stream's polling) and the emulated AWS (every agent turn, and litellm parsing every
token), so 20 streams share two GILs; on Lambda each stream and each agent turn has an execution
environment of its own. The c=20 row measures those processes' capacity on this machine (see the
CPU table, and litellm's own rate at 20 streams in the first table), not Lambda's.

A MISS is reported, not failed: the exit status is non-zero only if the fake, DynamoDB or the
stack cannot start, or no run completes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK flags the Assistants API

import httpx  # noqa: E402

from local.lambda_runtime import free_port  # noqa: E402
from tests.conftest import ROOT, start_local_stack, stop  # noqa: E402
from tests.harness.processes import terminate, wait_until_healthy  # noqa: E402

# ------------------------------------------------------------------ parameters

TTFT = 0.3  # s, the fake's time to first token
TPS = 50.0  # tokens per second, the fake's rate
WORDS = 60  # tokens per answer
HIGH = 20  # the "many streams" concurrency
ROUNDS = 3
C1_RUNS = 10  # sequential runs per round
C20_RUNS_PER_WORKER = 1  # per round: HIGH workers x this many runs
WARMUP_C1_RUNS = 3
WARMUP_HIGH_RUNS_PER_WORKER = 1
CALIBRATION_RUNS = 10

TARGET_OVERHEAD_P50_MS = 50.0
TARGET_OVERHEAD_P95_MS = 150.0
TARGET_THROUGHPUT_RATIO = 0.95

MODEL = "openai/bench"
TOKEN_RE = re.compile(r"\s*\S+|\s+")  # how the fake splits its answer (tests.harness.fake_llm._TOKEN_RE)
# Events whose arrival times (after the create-run request) report() shows besides the first delta.
MILESTONES = ("thread.run.created", "thread.run.in_progress", "thread.message.created")


def n_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def pct(values: list[float], q: float) -> float:
    """Percentile, linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ------------------------------------------------------------------ records


@dataclass
class RunSample:
    concurrency: int
    t_send: float = 0.0  # perf_counter
    t_end: float = 0.0  # perf_counter, when the stream closed (or failed)
    latency: float = 0.0  # t_first - t_send
    window: float = 0.0  # t_done - t_first
    tokens: int = 0
    tokens_after_first: int = 0
    milestones: dict[str, float] = field(default_factory=dict)  # event -> seconds after t_send
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def rate_ratio(self) -> float:
        return (self.tokens_after_first / self.window) / TPS if self.window > 0 else float("nan")


@dataclass
class ControlSample:
    ttft: float
    rate_ratio: float


@dataclass
class Phase:
    concurrency: int
    runs: list[RunSample] = field(default_factory=list)
    controls: list[ControlSample] = field(default_factory=list)
    loop_lag: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # process -> cores busy during the phase
    wall: float = 0.0
    # CPU seconds during the phase per function, and per stack process outside any function
    # ("api:rest", "aws:rest"), from the stack's meters (local.cpu_meter)
    functions: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ processes


def _pythonpath_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'core' / 'python'}{os.pathsep}{ROOT}"}


def start_fake(log_path: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """The fake LLM's CLI in a process of its own (``options``: its flags; by default this
    benchmark's timing); returns the process and its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "tests.harness.fake_llm", "--port", str(port)]
    command += list(options) or ["--ttft", str(TTFT), "--tps", str(TPS), "--words", str(WORDS)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_pythonpath_env())
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(process, f"{url}/health", log_path, "fake LLM", timeout=30)
    return process, f"{url}/v1"


# DynamoDB Local keeps one database per access key and region (without -sharedDb): the tables
# must be created with the credentials the stack will use.
STACK_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def shut_down(
    stack: subprocess.Popen[bytes] | None, fake: subprocess.Popen[bytes] | None, dynamodb: Any = None
) -> None:
    """Stop what a benchmark started (whatever of it did start)."""
    if stack is not None:
        stop(stack)
    if fake is not None:
        terminate(fake)
    if dynamodb is not None:
        dynamodb.stop()


def start_dynamodb_local() -> Any:
    """DynamoDB Local with the template's tables; raises if Java or the jar is missing."""
    import boto3

    from local import template as cfn
    from tests.harness.dynamodb_local import DynamoDBLocal

    local = DynamoDBLocal().start()
    try:
        client = boto3.client(
            "dynamodb",
            endpoint_url=local.endpoint_url,
            region_name=cfn.REGION,
            aws_access_key_id=STACK_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=STACK_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        cfn.create_tables(client, cfn.load_template())
    except BaseException:
        local.stop()
        raise
    return local


class Background:
    """Run a blocking start-up function in a thread while this one does something else."""

    def __init__(self, function: Any, *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Any, *args: Any) -> None:
        try:
            self.result = function(*args)
        except BaseException as error:  # reported by get()
            self.error = error

    def get(self) -> Any:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result


def child_pid(parent: int) -> int | None:
    """The local stack's child process (the emulated AWS with the agent step), from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:  # the field after the state is the parent's pid
            return int(stat.parent.name)
    return None


class CpuMeter:
    """CPU time of our processes and of the whole machine, from /proc (Linux)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids  # name -> pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _process(self, pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return sum(int(v) for v in fields[11:15]) / self.ticks  # utime stime cutime cstime

    def snapshot(self) -> dict[str, float]:
        """Seconds of CPU so far per process, the machine's busy seconds and a wall clock."""
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = (sum(fields) - fields[3] - fields[4]) / self.ticks  # minus idle and iowait
        return {
            **{name: self._process(pid) for name, pid in self.pids.items()},
            "machine": busy,
            "wall": time.perf_counter(),
        }

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Average cores busy per process, and in all other processes ("others"), between two snapshots."""
        wall = after["wall"] - before["wall"]
        used = {name: (after[name] - before[name]) / wall for name in before if name not in ("machine", "wall")}
        used["others"] = max(0.0, (after["machine"] - before["machine"]) / wall - sum(used.values()))
        return used


def function_cpu(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per function between two ``/_local/cpu`` answers, and each process's rest."""
    out: dict[str, float] = {}
    for process in ("api", "aws"):
        if process not in after:
            continue
        old, new = before.get(process, {}).get("functions", {}), after[process]["functions"]
        charged = 0.0
        for name, meter in new.items():
            spent = meter["cpu"] - old.get(name, {}).get("cpu", 0.0)
            out[name] = out.get(name, 0.0) + spent
            charged += spent
        whole = after[process]["process_cpu"] - before.get(process, {}).get("process_cpu", 0.0)
        out[f"{process}:rest"] = whole - charged
    return out


# ------------------------------------------------------------------ the fake alone


async def fake_direct(http: httpx.AsyncClient, base_url: str, *, whole: bool = True) -> ControlSample:
    """One streamed completion straight to the fake: ttft (sent -> first content chunk) and rate.

    With ``whole=False`` the stream is dropped after the first token (rate: nan), to save time.
    """
    body = {
        "model": "control",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first = last = None
    count = 0
    t_send = time.perf_counter()
    async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            if choices and choices[0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
                count += 1
                if not whole:
                    return ControlSample(first - t_send, float("nan"))
    if first is None or last is None or last <= first:
        raise RuntimeError("the fake streamed no content")
    return ControlSample(first - t_send, ((count - 1) / (last - first)) / TPS)


async def fake_via_litellm(base_url: str, *, whole: bool = False) -> ControlSample:
    """One streamed completion through litellm, as the agent step makes it: ttft, and with
    ``whole`` the token rate over the full answer (else the stream is dropped after the first token)."""
    import litellm

    first = last = None
    count = 0
    t_send = time.perf_counter()
    response = await litellm.acompletion(
        model=MODEL,
        api_base=base_url,
        api_key="x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    try:
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                last = time.perf_counter()
                first = first or last
                count += 1
                if not whole:
                    return ControlSample(first - t_send, float("nan"))
    finally:
        await response.aclose()  # drop the rest of the answer
    if first is None or last is None or last <= first:
        raise RuntimeError("litellm streamed no content")
    return ControlSample(first - t_send, ((count - 1) / (last - first)) / TPS)


async def calibrate(base_url: str) -> dict[str, list[float]]:
    """The fake's real time to first token, with the stack idle."""
    out: dict[str, list[float]] = {}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        await fake_direct(http, base_url)  # opens the connection
        out["raw c=1"] = [(await fake_direct(http, base_url, whole=False)).ttft for _ in range(CALIBRATION_RUNS)]
        burst = await asyncio.gather(*(fake_direct(http, base_url) for _ in range(HIGH)))
        out["raw c=20"] = [s.ttft for s in burst]
        out["raw c=20 rate"] = [s.rate_ratio for s in burst]
    await fake_via_litellm(base_url)  # litellm's first call imports much of itself
    out["litellm c=1"] = [(await fake_via_litellm(base_url)).ttft for _ in range(CALIBRATION_RUNS)]
    out["litellm c=20"] = [s.ttft for s in await asyncio.gather(*(fake_via_litellm(base_url) for _ in range(HIGH)))]
    # What the model client alone costs: CPU per whole answer, and the rate it keeps at 20 streams
    # in one process (the local stack runs every agent turn in one process, too).
    started = time.process_time()
    for _ in range(3):
        await fake_via_litellm(base_url, whole=True)
    out["litellm cpu per answer"] = [(time.process_time() - started) / 3]
    burst = await asyncio.gather(*(fake_via_litellm(base_url, whole=True) for _ in range(HIGH)))
    out["litellm c=20 rate"] = [s.rate_ratio for s in burst]
    return out


# ------------------------------------------------------------------ streamed runs


class Bench:
    def __init__(self, stack_url: str, fake_url: str, meter: CpuMeter) -> None:
        from openai import AsyncOpenAI

        self.stack_url = stack_url
        self.fake_url = fake_url
        self.meter = meter
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.http = httpx.AsyncClient(timeout=60, limits=limits)
        self.client = AsyncOpenAI(
            base_url=f"{stack_url}/v1",
            api_key="sk-bench",
            max_retries=0,  # a retried request would hide a failure and skew its timing
            timeout=60,
            http_client=httpx.AsyncClient(timeout=60, limits=limits),
        )
        self.assistant_id = ""
        self.threads: list[str] = []

    async def setup(self, threads_needed: int, parallel: int) -> None:
        assistant = await self.client.beta.assistants.create(model=MODEL, instructions="Be brief.")
        self.assistant_id = assistant.id
        semaphore = asyncio.Semaphore(parallel)

        async def new_thread() -> str:
            async with semaphore:
                thread = await self.client.beta.threads.create(messages=[{"role": "user", "content": "Say something."}])
                return thread.id

        self.threads = list(await asyncio.gather(*(new_thread() for _ in range(threads_needed))))

    async def run_once(self, concurrency: int) -> RunSample:
        sample = RunSample(concurrency)
        thread_id = self.threads.pop()
        t_first = t_done = None
        pieces: list[str] = []
        t_send = sample.t_send = time.perf_counter()
        try:
            async with self.client.beta.threads.runs.stream(
                thread_id=thread_id, assistant_id=self.assistant_id
            ) as stream:
                async for event in stream:
                    now = time.perf_counter()
                    if event.event == "thread.message.delta":
                        t_first = t_first or now
                        pieces.append(
                            "".join(
                                part.text.value or ""
                                for part in event.data.delta.content or []
                                if part.type == "text" and part.text is not None
                            )
                        )
                    elif event.event == "thread.message.completed":
                        t_done = now
                    elif event.event in MILESTONES:
                        sample.milestones.setdefault(event.event, now - t_send)
                    elif event.event in ("thread.run.failed", "thread.run.expired", "thread.run.cancelled"):
                        sample.error = f"{event.event}: {getattr(event.data, 'last_error', None)}"
        except Exception as error:  # a failed run is counted, not fatal
            sample.error = f"{type(error).__name__}: {error}"
        finally:
            sample.t_end = time.perf_counter()
        if sample.error:
            return sample
        if t_first is None or t_done is None:
            sample.error = "the stream ended without text"
            return sample
        sample.latency = t_first - t_send
        sample.window = t_done - t_first
        sample.tokens = n_tokens("".join(pieces))
        sample.tokens_after_first = sample.tokens - n_tokens(pieces[0])
        return sample

    async def _control(self, phase: Phase, finished: asyncio.Event) -> None:
        while not finished.is_set():
            phase.controls.append(await fake_direct(self.http, self.fake_url))

    async def _ticker(self, phase: Phase, finished: asyncio.Event) -> None:
        period = 0.005
        while not finished.is_set():
            start = time.perf_counter()
            await asyncio.sleep(period)
            phase.loop_lag.append(time.perf_counter() - start - period)

    async def phase(self, concurrency: int, runs_per_worker: int, *, measured: bool = True) -> Phase:
        phase = Phase(concurrency)
        finished = asyncio.Event()
        background = []
        if measured:
            background = [
                asyncio.create_task(self._control(phase, finished)),
                asyncio.create_task(self._ticker(phase, finished)),
            ]
        run_length = TTFT + WORDS / TPS
        functions_before = await self._function_meters()
        before = self.meter.snapshot()

        async def worker(index: int) -> None:
            if concurrency > 1:  # spread the starts over one run: a steady load, not a burst
                await asyncio.sleep(run_length * index / concurrency)
            for _ in range(runs_per_worker):
                phase.runs.append(await self.run_once(concurrency))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        after = self.meter.snapshot()
        phase.cpu, phase.wall = CpuMeter.cores(before, after), after["wall"] - before["wall"]
        phase.functions = function_cpu(functions_before, await self._function_meters())
        finished.set()
        await asyncio.gather(*background)
        return phase

    async def _function_meters(self) -> dict[str, Any]:
        """The local stack's CPU meters per function, in both its processes (local.cpu_meter)."""
        response = await self.http.get(f"{self.stack_url}/_local/cpu")
        response.raise_for_status()
        return dict(response.json())

    async def close(self) -> None:
        await self.client.close()
        await self.http.aclose()


async def measure(stack_url: str, fake_url: str, meter: CpuMeter, parallel_setup: int) -> list[Phase]:
    bench = Bench(stack_url, fake_url, meter)
    try:
        needed = ROUNDS * (C1_RUNS + HIGH * C20_RUNS_PER_WORKER)
        needed += WARMUP_C1_RUNS + HIGH * WARMUP_HIGH_RUNS_PER_WORKER
        started = time.perf_counter()
        await bench.setup(needed, parallel_setup)
        print(f"  {needed} threads created in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        await bench.phase(1, WARMUP_C1_RUNS, measured=False)
        await bench.phase(HIGH, WARMUP_HIGH_RUNS_PER_WORKER, measured=False)
        print(f"  warm-up in {time.perf_counter() - started:.1f} s", flush=True)
        phases = []
        for number in range(ROUNDS):
            started = time.perf_counter()
            phases.append(await bench.phase(1, C1_RUNS))
            phases.append(await bench.phase(HIGH, C20_RUNS_PER_WORKER))
            print(f"  round {number + 1}/{ROUNDS} in {time.perf_counter() - started:.1f} s", flush=True)
        return phases
    finally:
        await bench.close()


# ------------------------------------------------------------------ report


def mean_open_streams(phase: Phase) -> list[float]:
    """For each run, the time-averaged number of this phase's streams open while it was (itself included)."""
    out = []
    for run in phase.runs:
        span = run.t_end - run.t_send
        if span <= 0:
            continue
        overlap = sum(max(0.0, min(run.t_end, o.t_end) - max(run.t_send, o.t_send)) for o in phase.runs)
        out.append(overlap / span)
    return out


def _runs(phases: list[Phase], concurrency: int) -> list[RunSample]:
    return [r for p in phases if p.concurrency == concurrency for r in p.runs]


def report(calibration: dict[str, list[float]], upstream: float, phases: list[Phase], backend: str) -> bool:
    """Print the figures; returns whether every target was met."""
    ms = 1000
    levels = (1, HIGH)
    print()
    print(
        f"Fake LLM alone (configured: first token {TTFT * ms:.0f} ms after the headers, "
        f"then {TPS:.0f} tokens/s, {WORDS} tokens per answer)"
    )
    print(f"  {'request sent -> first content token':<40} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    names = {
        "raw c=1": "raw HTTP, 1 stream",
        "raw c=20": f"raw HTTP, {HIGH} streams at once",
        "litellm c=1": "litellm, 1 stream",
        "litellm c=20": f"litellm, {HIGH} streams at once",
    }
    for key, label in names.items():
        values = [v * ms for v in calibration[key]]
        print(f"  {label:<40} {len(values):>3} {pct(values, 50):8.1f} {pct(values, 95):8.1f} {max(values):8.1f}")
    rates = calibration["raw c=20 rate"]
    print(f"  token rate of {HIGH} raw streams / {TPS:.0f}: min {min(rates):.3f}, p50 {pct(rates, 50):.3f}")
    rates = calibration["litellm c=20 rate"]
    print(
        f"  token rate of {HIGH} litellm streams in one process / {TPS:.0f}: min {min(rates):.3f}, "
        f"p50 {pct(rates, 50):.3f}; litellm's CPU per {WORDS}-token answer: "
        f"{calibration['litellm cpu per answer'][0] * ms:.0f} ms"
    )
    print(f"  upstream ttft subtracted below: {upstream * ms:.1f} ms (raw HTTP, 1 stream, p50)")
    print()
    print(f"Streamed runs, local stack with {backend}")
    print("  client: openai SDK, AsyncOpenAI + client.beta.threads.runs.stream, one event loop, a new thread per run")
    print("  overhead         = (create-run request sent -> first thread.message.delta) - upstream ttft")
    print(
        "  throughput ratio = (tokens after the first delta / (first delta -> thread.message.completed))"
        f" / {TPS:.0f} tokens/s"
    )
    print("  open = streams open on average during a run; control = a raw stream to the fake in the same phases;")
    print("  percentiles interpolate linearly between order statistics")
    print()
    print(
        f"  {'streams':>7} {'n':>4} {'fail':>4} {'open':>5} | {'overhead ms: p50':>16} {'p95':>7} {'max':>7} | "
        f"{'throughput ratio: p50':>21} {'min':>6} | {'control: ttft-upstream p50/max ms':>33} {'rate min':>8} | "
        f"{'client loop lag p99':>19}"
    )
    for concurrency in levels:
        selected = [p for p in phases if p.concurrency == concurrency]
        runs = _runs(phases, concurrency)
        good = [r for r in runs if r.ok]
        if not good:
            print(f"  {concurrency:>7} {0:>4} {len(runs):>4}   no run completed")
        else:
            overhead = [(r.latency - upstream) * ms for r in good]
            ratios = [r.rate_ratio for r in good]
            controls = [c for p in selected for c in p.controls]
            control_error = [(c.ttft - upstream) * ms for c in controls]
            control_rate = min(c.rate_ratio for c in controls)
            lag = pct([v * ms for p in selected for v in p.loop_lag], 99)
            open_streams = statistics.mean(v for p in selected for v in mean_open_streams(p))
            print(
                f"  {concurrency:>7} {len(good):>4} {len(runs) - len(good):>4} {open_streams:>5.1f} | "
                f"{pct(overhead, 50):>16.1f} {pct(overhead, 95):>7.1f} {max(overhead):>7.1f} | "
                f"{pct(ratios, 50):>21.3f} {min(ratios):>6.3f} | "
                f"{pct(control_error, 50):>25.1f} / {max(control_error):>5.1f} {control_rate:>8.3f} | "
                f"{lag:>16.1f} ms"
            )
        wrong = [r.tokens for r in good if r.tokens != WORDS]
        if wrong:
            print(f"          warning: {len(wrong)} runs delivered a token count other than {WORDS}: {wrong[:5]}")
        for error in sorted({r.error for r in runs if not r.ok})[:3]:
            print(f"          failure: {error[:300]}")

    print()
    print("  When each event reached the client, ms after the create-run request was sent (p50)")
    print(f"  {'':<60} " + " ".join(f"{f'c={c}':>7}" for c in levels))
    milestones = [
        ("thread.run.created", "thread.run.created (the API wrote the run, first poll)"),
        ("thread.run.in_progress", "thread.run.in_progress (the state machine started the agent)"),
        ("thread.message.created", "thread.message.created (written with the first token)"),
        (None, "first thread.message.delta"),
    ]
    for event, label in milestones:
        cells = []
        for concurrency in levels:
            good = [r for r in _runs(phases, concurrency) if r.ok]
            values = [
                (r.milestones[event] if event else r.latency) * ms for r in good if not event or event in r.milestones
            ]
            cells.append(f"{pct(values, 50):7.1f}")
        print(f"  {label:<60} " + " ".join(cells))
    print(f"  {'  of which the upstream ttft':<60} " + " ".join(f"{upstream * ms:7.1f}" for _ in levels))

    print()
    print("  CPU during the measured phases (cores busy on average; 1.00 = one core)")
    print(f"  {'':<60} " + " ".join(f"{f'c={c}':>7}" for c in levels))
    processes = [
        ("stack", "local stack, API process (gateway, API functions, polls)"),
        ("aws", "local stack, emulated AWS (moto, Step Functions, agent)"),
        ("dynamodb", "DynamoDB Local (Java)"),
        ("fake", "fake LLM"),
        ("client", "this client"),
        ("others", "other processes on this machine"),
    ]
    usage: dict[int, dict[str, float]] = {}
    for concurrency in levels:
        selected = [p for p in phases if p.concurrency == concurrency and p.wall > 0]
        wall = sum(p.wall for p in selected) or 1.0
        usage[concurrency] = {
            name: sum(p.cpu.get(name, 0.0) * p.wall for p in selected) / wall for name, _ in processes
        }
        count = sum(len(p.runs) for p in selected) or 1
        usage[concurrency]["stack ms/run"] = (
            sum((p.cpu.get("stack", 0.0) + p.cpu.get("aws", 0.0)) * p.wall for p in selected) / count * ms
        )
        usage[concurrency]["with dynamodb ms/run"] = (
            sum(sum(p.cpu.get(k, 0.0) for k in ("stack", "aws", "dynamodb")) * p.wall for p in selected) / count * ms
        )
    for name, label in processes:
        if any(name in p.cpu for p in phases):
            print(f"  {label:<60} " + " ".join(f"{usage[c][name]:7.2f}" for c in levels))
    per_run = " ".join(f"{usage[c]['stack ms/run']:7.0f}" for c in levels)
    print(f"  {'local stack CPU per run, both processes (ms)':<60} " + per_run)
    per_run_db = " ".join(f"{usage[c]['with dynamodb ms/run']:7.0f}" for c in levels)
    print(f"  {'  and with DynamoDB Local (ms)':<60} " + per_run_db)
    # Capacity: with HIGH streams always open at the model's pace, runs finish HIGH / (run length)
    # times a second, each costing about what a run costs at 1 stream (polls and delta writes
    # follow the clock, litellm's work follows the tokens). The client and the fake are left out.
    alone = [r.t_end - r.t_send for r in _runs(phases, 1) if r.ok]
    if alone:
        length = statistics.median(alone)
        cost = usage[1]["with dynamodb ms/run"]
        need = cost / ms * HIGH / length
        cores = os.cpu_count()
        print(f"  {HIGH} streams at the model's pace would need about {need:.1f} cores; this machine has {cores}:")
        print(f"    {cost:.0f} ms CPU per run (stack and DynamoDB Local, at 1 stream) x {HIGH} runs / {length:.2f} s")
    report_function_cpu(phases, usage, levels)
    if max(usage[c]["others"] for c in levels) > 0.25:
        print("  warning: other processes used this machine's CPU meanwhile: the figures are disturbed")

    print()
    print("Targets")
    met = True
    for concurrency in levels:
        good = [r for r in _runs(phases, concurrency) if r.ok]
        if not good:
            print(f"  MISS  {f'c={concurrency}':<5} no run completed")
            met = False
            continue
        overhead = [(r.latency - upstream) * ms for r in good]
        ratio = pct([r.rate_ratio for r in good], 50)
        rows: list[tuple[str, str, bool]] = []
        if concurrency == 1:
            rows.append(
                (
                    f"overhead p50 <= {TARGET_OVERHEAD_P50_MS:.0f} ms",
                    f"{pct(overhead, 50):.1f} ms",
                    pct(overhead, 50) <= TARGET_OVERHEAD_P50_MS,
                )
            )
            rows.append(
                (
                    f"overhead p95 <= {TARGET_OVERHEAD_P95_MS:.0f} ms",
                    f"{pct(overhead, 95):.1f} ms",
                    pct(overhead, 95) <= TARGET_OVERHEAD_P95_MS,
                )
            )
        rows.append(
            (f"throughput ratio p50 >= {TARGET_THROUGHPUT_RATIO}", f"{ratio:.3f}", ratio >= TARGET_THROUGHPUT_RATIO)
        )
        for name, value, ok in rows:
            met = met and ok
            print(f"  {'PASS' if ok else 'MISS'}  {f'c={concurrency}':<5} {name:<30} {value}")
    return met


def report_function_cpu(phases: list[Phase], usage: dict[int, dict[str, float]], levels: tuple[int, ...]) -> None:
    """CPU per run by function (what each Lambda's environment would spend), from local.cpu_meter."""
    ms = 1000
    per_run: dict[int, dict[str, float]] = {}
    for concurrency in levels:
        selected = [p for p in phases if p.concurrency == concurrency]
        count = sum(len(p.runs) for p in selected) or 1
        totals: dict[str, float] = {}
        for phase in selected:
            for name, seconds in phase.functions.items():
                totals[name] = totals.get(name, 0.0) + seconds
        per_run[concurrency] = {name: seconds / count * ms for name, seconds in totals.items()}
        wall = sum(p.wall for p in selected) or 1.0
        per_run[concurrency]["dynamodb"] = usage[concurrency]["dynamodb"] * wall / count * ms
    if not any(per_run[c] for c in levels):
        return
    print()
    print("  CPU per run by function, ms (thread CPU while each function's code runs: local.cpu_meter)")
    print(f"  {'':<60} " + " ".join(f"{f'c={c}':>7}" for c in levels))
    functions = sorted(  # those that ran during the phases (the setup's are not in them)
        {n for c in levels for n, ms_run in per_run[c].items() if ":" not in n and n != "dynamodb" and ms_run >= 0.5},
        key=lambda n: -per_run[levels[0]].get(n, 0.0),
    )
    rows = [(name, name) for name in functions] + [
        ("api:rest", "API process outside functions (uvicorn, the gateway)"),
        ("aws:rest", "emulated AWS outside functions (moto, Step Functions)"),
        ("dynamodb", "DynamoDB Local (Java)"),
    ]
    for key, label in rows:
        print(f"  {label:<60} " + " ".join(f"{per_run[c].get(key, 0.0):7.0f}" for c in levels))
    in_functions = " ".join(f"{sum(per_run[c].get(n, 0.0) for n in functions):7.0f}" for c in levels)
    print(f"  {'total in the functions (what Lambda runs)':<60} " + in_functions)
    everything = " ".join(f"{sum(per_run[c].values()):7.0f}" for c in levels)
    print(f"  {'total with the emulators and DynamoDB Local':<60} " + everything)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "--dynamodb",
        choices=("local", "moto"),
        default="local",
        help="the stack's tables: DynamoDB Local (default; moto if Java or the jar is missing) or moto",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    print(f"Streaming benchmark ({os.cpu_count()} cores; logs in {workdir})", flush=True)
    fake: subprocess.Popen[bytes] | None = None
    stack: subprocess.Popen[bytes] | None = None
    dynamodb: Any = None
    try:
        try:
            fake, fake_url = start_fake(workdir / "fake-llm.log")
        except Exception as error:
            print(f"fake LLM could not start: {error}", file=sys.stderr)
            return 2
        print(f"  fake LLM at {fake_url} (pid {fake.pid})", flush=True)
        backend = "moto's DynamoDB (in the stack process)"
        env = {
            "OPENAI_BASE_URL": fake_url,
            "OPENAI_API_KEY": "x",
            "ASSISTANTS_API_KEYS": "",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LOCAL_CPU_METER": "1",  # CPU per run by function (local.cpu_meter)
        }
        started = time.perf_counter()
        if args.dynamodb == "local":
            try:
                dynamodb = start_dynamodb_local()
            except Exception as error:
                print(f"  warning: DynamoDB Local unavailable ({str(error)[:200]})", flush=True)
                print("  using moto's DynamoDB, in the stack's process: slower, see --dynamodb", flush=True)
            else:
                env.update(STACK_CREDENTIALS, AWS_ENDPOINT_URL_DYNAMODB=dynamodb.endpoint_url)
                backend = "DynamoDB Local"
                print(f"  DynamoDB Local at {dynamodb.endpoint_url} after {time.perf_counter() - started:.1f} s")
        # The stack takes a while to import and build: load this process's imports meanwhile.
        booting = Background(start_local_stack, workdir / "local-stack.log", env)
        import litellm  # noqa: F401
        import openai  # noqa: F401

        try:
            stack, stack_url = booting.get()
        except Exception as error:
            print(f"local stack could not start: {error}", file=sys.stderr)
            return 2
        print(f"  local stack at {stack_url} (pid {stack.pid}) after {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        calibration = asyncio.run(calibrate(fake_url))
        upstream = pct(calibration["raw c=1"], 50)
        print(f"  fake LLM calibrated in {time.perf_counter() - started:.1f} s", flush=True)
        pids = {"stack": stack.pid, "fake": fake.pid, "client": os.getpid()}
        emulator = child_pid(stack.pid)
        if emulator is not None:
            pids["aws"] = emulator
        if dynamodb is not None:
            pids["dynamodb"] = dynamodb.process.pid
        # moto's TransactWriteItems is not thread-safe: create the threads one at a time there.
        phases = asyncio.run(measure(stack_url, fake_url, CpuMeter(pids), parallel_setup=4 if dynamodb else 1))
        report(calibration, upstream, phases, backend)
        print(f"\n(total {time.perf_counter() - began:.0f} s)")
        return 0 if any(r.ok for p in phases for r in p.runs) else 1
    finally:
        shut_down(stack, fake, dynamodb)


if __name__ == "__main__":
    sys.exit(main())
