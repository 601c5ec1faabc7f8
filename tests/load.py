"""Load: many streamed runs at once through the SDK, and what each one left behind.

Run with ``make load`` (200 runs, 50 at a time) and ``make load-faults`` (the same with a model
that fails 10% of its requests with HTTP 500 and leaves 5% hanging), or
``python -m tests.load [--runs 200] [--concurrency 50] [--faults] [--dynamodb local|moto]``.

The processes are the benchmark's (``tests.bench``): the fake LLM's CLI in its own process,
DynamoDB Local, the local stack pointed at both, and this process as the client: the official
SDK, ``AsyncOpenAI``, every run on one event loop. Half of the runs (odd numbers) use an
assistant with a function tool whose model (``-tool-round``, see ``tests.harness.fake_llm``)
calls it once: their first stream ends in ``requires_action`` and the run goes on in a
``submit_tool_outputs_stream``. The model's calls time out after ``--model-timeout`` seconds
(``MODEL_TIMEOUT_SECONDS``), which is what ends a hanging request.

Each run gets a thread of its own, and these checks:

- **terminal**: after its streams, the run reaches a terminal status (``completed`` without
  faults); one that has not within the model timeout and a minute more is "not terminal";
- **events**: every byte of every SSE response is recorded below the SDK (an httpx transport)
  and parsed; the events of the run's streams, in order, must be exactly the run's event log in
  DynamoDB (read at the end): an event in the log and in no stream is *lost*, an event in a
  stream and not in the log is *extra*, the same events in another order are *out of order*.
  And the stream must make sense on its own: ``thread.run.created`` first, each stream ends with
  an end event and ``done``, no object's event before its ``created`` or after its end;
- **messages**: ``messages.list`` has the user's message, and each message the streams
  announced, with the text its deltas add up to;
- **lock**: after the run, the thread takes a new message (``messages.create``), and at the end
  no thread item in the table holds a run lock (``active_run_id``);
- **5xx**: every response with a 5xx status the client saw, counting those the SDK retried;
- **time to first token**: from just before the SDK sends the create-run request to the first
  delta (``thread.message.delta`` or, for a tool call, ``thread.run.step.delta``) out of the
  SDK's stream.

The exit status is 1 if any correctness count is not 0 (without faults, a run that did not
complete counts too), 2 if the stack could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
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

import httpx  # noqa: E402

from local.lambda_runtime import free_port  # noqa: E402
from tests.bench import (  # noqa: E402
    STACK_CREDENTIALS,
    Background,
    pct,
    shut_down,
    start_dynamodb_local,
    start_fake,
)
from tests.conftest import start_local_stack  # noqa: E402
from tests.harness.sse import parse_sse  # noqa: E402

TTFT, TPS, WORDS = 0.3, 50.0, 20  # the fake model: first token, tokens per second, tokens per answer
FAIL_RATE, HANG_RATE, SEED = 0.10, 0.05, 10
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
STREAM_ENDS = TERMINAL | {"requires_action"}
RUN_HEADER = "x-load-run"  # tags a run's requests, so the transport files their bytes under it
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a number up.",
        "parameters": {"type": "object", "properties": {"round": {"type": "integer"}}},
    },
}


# ------------------------------------------------------------------ what the client saw


class _Tee(httpx.AsyncByteStream):
    """A response body that keeps a copy of every chunk the SDK reads."""

    def __init__(self, inner: httpx.AsyncByteStream, sink: list[bytes]) -> None:
        self.inner, self.sink = inner, sink

    async def __aiter__(self) -> Any:
        async for chunk in self.inner:
            self.sink.append(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingTransport(httpx.AsyncBaseTransport):
    """Counts every response by status (the SDK's retries included) and keeps the bytes of
    every event stream, per run, below the SDK's own parsing."""

    def __init__(self, limits: httpx.Limits) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=limits)
        self.server_errors: list[str] = []  # "status method path"
        self.connection_errors: list[str] = []
        self.streams: dict[str, list[list[bytes]]] = collections.defaultdict(list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as error:
            self.connection_errors.append(f"{type(error).__name__} {request.method} {request.url.path}")
            raise
        if response.status_code >= 500:
            self.server_errors.append(f"{response.status_code} {request.method} {request.url.path}")
        key = request.headers.get(RUN_HEADER)
        if key and response.headers.get("content-type", "").startswith("text/event-stream"):
            sink: list[bytes] = []
            self.streams[key].append(sink)
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _Tee(response.stream, sink)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def frames(self, key: str) -> list[list[tuple[str, Any]]]:
        """Each of a run's event streams, parsed: (event, data) in the order they came."""
        return [parse_sse(b"".join(chunks).decode()).events for chunks in self.streams.get(key, [])]


@dataclass
class RunRecord:
    number: int
    tool_round: bool
    thread_id: str = ""
    run_id: str = ""
    status: str = ""  # after the streams (and waiting for a terminal status)
    last_error: str = ""  # "code: message" of a run that did not complete
    ttft: float | None = None
    error: str = ""  # an exception the client got
    problems: dict[str, list[str]] = field(default_factory=lambda: collections.defaultdict(list))
    duration: float = 0.0


# ------------------------------------------------------------------ one run


class Load:
    def __init__(self, stack_url: str, runs: int, concurrency: int, settle_seconds: float) -> None:
        from openai import AsyncOpenAI

        limits = httpx.Limits(max_connections=concurrency * 2 + 16, max_keepalive_connections=concurrency * 2)
        self.transport = RecordingTransport(limits)
        self.client = AsyncOpenAI(
            base_url=f"{stack_url}/v1",
            api_key="sk-load",
            http_client=httpx.AsyncClient(transport=self.transport, timeout=httpx.Timeout(120, connect=30)),
        )
        self.runs, self.concurrency, self.settle_seconds = runs, concurrency, settle_seconds
        self.records: list[RunRecord] = []

    async def setup(self) -> None:
        self.plain = await self.client.beta.assistants.create(model="openai/load", instructions="Be brief.")
        self.tools = await self.client.beta.assistants.create(model="openai/load-tool-round", tools=[TOOL])  # type: ignore[list-item]

    async def warm_up(self) -> None:
        """One run of each kind, not counted: the first imports and connections are slow."""
        for number in (-2, -1):
            await self.one(RunRecord(number, tool_round=number == -1))

    async def drive(self) -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in range(self.runs):
            queue.put_nowait(number)

        async def worker() -> None:
            while not queue.empty():
                record = RunRecord(queue.get_nowait(), tool_round=False)
                record.tool_round = record.number % 2 == 1
                self.records.append(record)
                started = time.perf_counter()
                try:
                    await self.one(record)
                except Exception as error:  # counted and reported
                    record.error = record.error or f"{type(error).__name__}: {error}"[:300]
                record.duration = time.perf_counter() - started
                if (done := len([r for r in self.records if r.duration])) % 25 == 0:
                    print(f"  {done}/{self.runs} runs", flush=True)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return time.perf_counter() - started

    async def one(self, record: RunRecord) -> None:
        client = self.client
        thread = await client.beta.threads.create(messages=[{"role": "user", "content": f"Load run {record.number}."}])
        record.thread_id = thread.id
        try:
            await self.stream(record)
        except Exception as error:  # counted and reported; the run and its thread are still checked
            record.error = f"{type(error).__name__}: {error}"[:300]
        if record.run_id:
            await self.settle(record)
        await self.check_thread(record)

    async def stream(self, record: RunRecord) -> None:
        client = self.client
        headers = {RUN_HEADER: f"run-{record.number}"}
        assistant = self.tools if record.tool_round else self.plain
        sent = time.perf_counter()
        async with client.beta.threads.runs.stream(
            thread_id=record.thread_id, assistant_id=assistant.id, extra_headers=headers
        ) as stream:
            async for event in stream:
                if event.event == "thread.run.created":
                    record.run_id = event.data.id
                if record.ttft is None and event.event in ("thread.message.delta", "thread.run.step.delta"):
                    record.ttft = time.perf_counter() - sent
            run = stream.current_run
        if run is None:
            raise RuntimeError("the stream announced no run")
        record.status = run.status
        if run.status == "requires_action" and run.required_action is not None:
            outputs = [
                {"tool_call_id": call.id, "output": "42"} for call in run.required_action.submit_tool_outputs.tool_calls
            ]
            async with client.beta.threads.runs.submit_tool_outputs_stream(
                run_id=run.id, thread_id=record.thread_id, tool_outputs=outputs, extra_headers=headers
            ) as stream:
                async for _ in stream:
                    pass
                run = stream.current_run or run
            record.status = run.status

    async def settle(self, record: RunRecord) -> None:
        """Wait for a terminal status: a stream may end with the run still going (an error event)."""
        deadline = time.monotonic() + self.settle_seconds
        while True:
            run = await self.client.beta.threads.runs.retrieve(record.run_id, thread_id=record.thread_id)
            record.status = run.status
            if run.last_error is not None:
                record.last_error = f"{run.last_error.code}: {run.last_error.message}"
            if record.status in TERMINAL or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        if record.status not in TERMINAL:
            record.problems["not terminal"].append(f"{record.run_id} is {record.status}")

    async def check_thread(self, record: RunRecord) -> None:
        """Messages (the user's, and each one the streams announced, with its text), then the lock."""
        from openai import BadRequestError

        messages = {
            m.id: m async for m in self.client.beta.threads.messages.list(record.thread_id, order="asc", limit=100)
        }
        users = [m for m in messages.values() if m.role == "user"]
        if len(users) != 1 or users[0].content[0].text.value != f"Load run {record.number}.":  # type: ignore[union-attr]
            record.problems["messages lost"].append(f"{record.thread_id}: the user's message")
        for message_id, streamed in streamed_messages(self.transport.frames(f"run-{record.number}")).items():
            stored = messages.get(message_id)
            if stored is None:
                record.problems["messages lost"].append(f"{message_id} announced, not stored")
                continue
            text = "".join(part.text.value for part in stored.content if part.type == "text")
            if text != streamed:
                record.problems["messages lost"].append(f"{message_id}: stored {text!r}, streamed {streamed!r}")
        if record.status == "completed" and not any(m.role == "assistant" for m in messages.values()):
            record.problems["messages lost"].append(f"{record.run_id} completed with no answer")
        try:
            await self.client.beta.threads.messages.create(record.thread_id, role="user", content="After the run.")
        except BadRequestError as error:
            record.problems["threads locked"].append(f"{record.thread_id}: {error.message}")

    async def close(self) -> None:
        await self.client.close()


def streamed_messages(streams: list[list[tuple[str, Any]]]) -> dict[str, str]:
    """Each message the streams announced, with the text its deltas add up to."""
    texts: dict[str, str] = {}
    for events in streams:
        for name, data in events:
            if name == "thread.message.created":
                texts.setdefault(data["id"], "")
            elif name == "thread.message.delta":
                for part in data["delta"].get("content") or []:
                    if part.get("type") == "text":
                        texts[data["id"]] = texts.get(data["id"], "") + part["text"].get("value", "")
    return texts


# ------------------------------------------------------------------ events: the streams against the log

_ENDS = {"completed", "failed", "cancelled", "expired", "incomplete"}


def check_stream_order(streams: list[list[tuple[str, Any]]]) -> list[str]:
    """What does not make sense in a run's streams taken on their own."""
    problems = []
    names = [name for events in streams for name, _ in events]
    if not names or names[0] != "thread.run.created":
        problems.append(f"the first event is {names[:1]}, not thread.run.created")
    for number, events in enumerate(streams):
        tail = [name for name, _ in events[-2:]]
        end = tail[0].rsplit(".", 1)[-1] if tail else ""
        if len(tail) != 2 or tail[1] != "done" or not tail[0].startswith("thread.run.") or end not in STREAM_ENDS:
            problems.append(f"stream {number + 1} ends with {tail}")
    state: dict[str, str] = {}  # object id -> "created" | "ended"
    for events in streams:
        for name, data in events:
            if name in ("done", "error") or not isinstance(data, dict) or "id" not in data:
                continue
            kind, _, what = name.rpartition(".")
            object_id = data["id"]
            if what == "created":
                if object_id in state:
                    problems.append(f"{name} twice for {object_id}")
                state[object_id] = "created"
                continue
            if kind == "thread.run" and what in ("queued", "in_progress", "requires_action"):
                state[object_id] = "created"  # a run leaves requires_action and goes on
            if object_id not in state:
                problems.append(f"{name} for {object_id} before its created event")
            elif state[object_id] == "ended":
                problems.append(f"{name} for {object_id} after its end")
            elif what in _ENDS:
                state[object_id] = "ended"
    return problems


def compare_with_log(streams: list[list[tuple[str, Any]]], log: list[tuple[str, Any]]) -> dict[str, int]:
    """Lost (in the log, in no stream), extra (streamed, not logged), and whether the common
    events came in the log's order (1: they did not)."""
    seen = [json.dumps([n, d], sort_keys=True) for events in streams for n, d in events if n != "done"]
    logged = [json.dumps([n, d], sort_keys=True) for n, d in log]
    seen_count, logged_count = collections.Counter(seen), collections.Counter(logged)
    lost = sum((logged_count - seen_count).values())
    extra = sum((seen_count - logged_count).values())
    common = seen_count & logged_count
    budget = collections.Counter(common)
    in_seen = [e for e in seen if budget[e] > 0 and not budget.subtract([e])]
    budget = collections.Counter(common)
    in_log = [e for e in logged if budget[e] > 0 and not budget.subtract([e])]
    return {"lost": lost, "extra": extra, "out_of_order": int(in_seen != in_log)}


def read_table(endpoint_url: str, credentials: dict[str, str]) -> tuple[dict[str, list[tuple[str, Any]]], list[str]]:
    """Every run's event log (run id -> events in order) and the threads still locked, from one Scan."""
    import boto3

    dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1", **_boto(credentials))
    (table,) = list(dynamodb.tables.all())
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    logs: dict[str, list[tuple[int, list[tuple[str, Any]]]]] = collections.defaultdict(list)
    locked = []
    for item in items:
        pk, sk = str(item["PK"]), str(item["SK"])
        if sk.startswith("EVT#") and "#RUN#" in pk:
            events = [(str(n), json.loads(str(d))) for n, d in zip(item["names"], item["data"], strict=True)]
            logs[pk.rsplit("#RUN#", 1)[1]].append((int(sk[4:]), events))
        elif sk == "THREAD" and item.get("active_run_id"):
            locked.append(f"{pk.rsplit('#THREAD#', 1)[1]} held by {item['active_run_id']}")
    ordered = {}
    for run_id, numbered in logs.items():
        numbered.sort(key=lambda pair: pair[0])
        numbers = [n for n, _ in numbered]
        if numbers != list(range(1, len(numbers) + 1)):
            locked_gap = f"log items {numbers[:3]}... not numbered 1..{len(numbers)}"
            ordered[run_id] = [("gap", locked_gap)]
        else:
            ordered[run_id] = [event for _, events in numbered for event in events]
    return ordered, locked


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials.get("AWS_ACCESS_KEY_ID", "local"),
        "aws_secret_access_key": credentials.get("AWS_SECRET_ACCESS_KEY", "local"),
    }


# ------------------------------------------------------------------ report


def report(load: Load, logs: dict[str, list[tuple[str, Any]]], locked: list[str], faults: bool, wall: float) -> bool:
    records = load.records
    events = collections.Counter[str]()
    event_runs = 0
    examples: dict[str, list[str]] = collections.defaultdict(list)
    for record in records:
        streams = load.transport.frames(f"run-{record.number}")
        problems = check_stream_order(streams)
        log = logs.get(record.run_id, [])
        if log and log[0][0] == "gap":
            problems.append(str(log[0][1]))
        difference = compare_with_log(streams, log) if record.run_id else {"lost": 0, "extra": 0, "out_of_order": 0}
        events.update(difference)
        if problems or any(difference.values()):
            event_runs += 1
            examples["events"].append(f"{record.run_id}: {problems[:2]} {difference}")
        for name, found in record.problems.items():
            examples[name] += found
    statuses = collections.Counter(r.status or "no run" for r in records)
    completed = statuses["completed"]
    not_terminal = sum(1 for r in records if r.status not in TERMINAL)
    messages_lost = sum(len(r.problems["messages lost"]) for r in records)
    threads_locked = sum(1 for r in records if r.problems["threads locked"]) + len(locked)
    server_errors = len(load.transport.server_errors)
    client_errors = [r for r in records if r.error]
    ttfts = [r.ttft * 1000 for r in records if r.ttft is not None]

    print()
    print(f"{len(records)} runs, {load.concurrency} at a time, half with one tool round; {wall:.0f} s")
    print(f"  {'runs completed':<42} {completed:>6}")
    print(f"  {'runs not completed':<42} {len(records) - completed:>6}   {dict(statuses)}")
    print(f"  {'runs not in a terminal state':<42} {not_terminal:>6}")
    print(f"  {'runs with events lost or out of order':<42} {event_runs:>6}   {dict(events)}")
    print(f"  {'messages lost or not as streamed':<42} {messages_lost:>6}")
    print(f"  {'threads left locked':<42} {threads_locked:>6}   ({len(locked)} by the table's locks)")
    print(f"  {'5xx responses (the SDK retries included)':<42} {server_errors:>6}")
    print(f"  {'client errors (exceptions out of the SDK)':<42} {len(client_errors):>6}")
    print(f"  {'connection errors (retried by the SDK)':<42} {len(load.transport.connection_errors):>6}")
    if ttfts:
        print(
            f"  {'time to first token, ms':<42} p50 {pct(ttfts, 50):,.0f}, p95 {pct(ttfts, 95):,.0f}, "
            f"max {max(ttfts):,.0f} (n={len(ttfts)}; the model's own: {TTFT * 1000:.0f})"
        )
    durations = [r.duration for r in records]
    print(f"  {'run, first request to checked, s':<42} p50 {pct(durations, 50):.1f}, max {max(durations):.1f}")
    errors = collections.Counter(r.last_error[:160] for r in records if r.status != "completed")
    for error, count in errors.most_common(5):
        print(f"    {count} x {error or '(no last_error)'}")
    for name, found in examples.items():
        for example in found[:3]:
            print(f"    {name}: {example[:300]}")
    for error in load.transport.server_errors[:3]:
        print(f"    5xx: {error}")
    for record in client_errors[:3]:
        print(f"    client error: run {record.number} ({record.run_id}): {record.error}")
    failures = [not_terminal, event_runs, messages_lost, threads_locked, server_errors, len(client_errors)]
    if not faults:
        failures.append(len(records) - completed)
    return not any(failures)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--faults", action="store_true", help=f"the model fails {FAIL_RATE:.0%}, hangs {HANG_RATE:.0%}")
    parser.add_argument("--model-timeout", type=float, default=30.0, help="MODEL_TIMEOUT_SECONDS of the stack")
    parser.add_argument("--dynamodb", choices=("local", "moto"), default="local")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="load-"))
    mode = f"the model failing {FAIL_RATE:.0%} and hanging {HANG_RATE:.0%}" if args.faults else "no faults"
    print(f"Load: {args.runs} runs, {args.concurrency} concurrent, {mode} ({os.cpu_count()} cores; logs in {workdir})")
    fake: subprocess.Popen[bytes] | None = None
    stack: subprocess.Popen[bytes] | None = None
    dynamodb: Any = None
    try:
        options = ["--ttft", str(TTFT), "--tps", str(TPS), "--words", str(WORDS)]
        if args.faults:
            options += ["--fail-rate", str(FAIL_RATE), "--hang-rate", str(HANG_RATE), "--seed", str(SEED)]
        try:
            fake, fake_url = start_fake(workdir / "fake-llm.log", *options)
        except Exception as error:
            print(f"fake LLM could not start: {error}", file=sys.stderr)
            return 2
        aws_port = free_port()
        env = {
            "OPENAI_BASE_URL": fake_url,
            "OPENAI_API_KEY": "x",
            "ASSISTANTS_API_KEYS": "",
            "MODEL_TIMEOUT_SECONDS": str(args.model_timeout),
            "LOCAL_AWS_PORT": str(aws_port),
        }
        table_endpoint, credentials = f"http://127.0.0.1:{aws_port}", dict(STACK_CREDENTIALS)
        if args.dynamodb == "local":
            dynamodb = start_dynamodb_local()
            env.update(STACK_CREDENTIALS, AWS_ENDPOINT_URL_DYNAMODB=dynamodb.endpoint_url)
            table_endpoint = dynamodb.endpoint_url
        booting = Background(start_local_stack, workdir / "local-stack.log", env)
        import openai  # noqa: F401

        try:
            stack, stack_url = booting.get()
        except Exception as error:
            print(f"local stack could not start: {error}", file=sys.stderr)
            return 2
        print(f"  stack up after {time.perf_counter() - began:.0f} s", flush=True)
        load = Load(stack_url, args.runs, args.concurrency, settle_seconds=args.model_timeout + 60)

        async def go() -> float:
            try:
                await load.setup()
                await load.warm_up()
                return await load.drive()
            finally:
                await load.close()

        wall = asyncio.run(go())
        logs, locked = read_table(table_endpoint, credentials)
        stats = httpx.get(fake_url.removesuffix("/v1") + "/_fake/stats", timeout=10).json()
        ok = report(load, logs, locked, args.faults, wall)
        print(f"  {'model requests (injected faults)':<42} {stats['chat_requests']:>6}   {stats['faults']}")
        print(f"\n{'PASS' if ok else 'FAIL'} (total {time.perf_counter() - began:.0f} s)")
        return 0 if ok else 1
    finally:
        shut_down(stack, fake, dynamodb)


if __name__ == "__main__":
    sys.exit(main())
