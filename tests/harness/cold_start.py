"""One cold start of one function, in the fresh process this module runs in (``tests.bench_cold``).

``python -m tests.harness.cold_start --function NAME --event FILE --out FILE``: apply the
function's template environment (as the local stack does), import its handler module as Lambda
would (``local.lambda_runtime.Functions``: its module-level warm-up included), invoke it twice
with the event, and write the figures as JSON to ``--out`` (stdout is the function's logs).

Only the standard library and ``local`` (PyYAML, for the template) are imported before the timed
import, so that the import figure is the function's own. An event ``{"http": {...}}`` is an HTTP
request to the function's ASGI app (the runs function, which the Lambda Web Adapter serves over
HTTP on AWS) rather than a Lambda event. ``--warm-event FILE`` gives the second invocation an
event of its own (the agent step's: another queued run, so that both invocations are model turns).

``python -m tests.harness.cold_start --queue-runs FILE --function NAME``: in a process of its own
(the bench's must not import the app), with the function's environment, create queued runs as
``runs.create`` does, but with no execution started, so that the measured invocation is the
run's first turn; FILE holds ``[{"tenant", "thread_id", "assistant_id"}, ...]`` and receives the
Step Functions task inputs the state machine would have sent (one per run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from typing import Any

from local import template as cfn
from local.lambda_runtime import Functions, LambdaContext, apply_function_environment


def peak_rss_mb() -> float:
    """This process's peak RSS. ``getrusage``'s maxrss keeps the parent's peak across fork and
    exec (Linux), so a child of a large process would report its parent's: the kernel's
    high-water mark of this address space (VmHWM), which exec starts afresh, is read instead."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status(result: Any) -> str:
    """What the invocation answered, in a word: an HTTP status, or a task's ``status``."""
    if isinstance(result, dict) and "statusCode" in result:
        return str(result["statusCode"])
    if isinstance(result, dict) and "status" in result:
        return str(result["status"])
    if isinstance(result, dict) and "policyDocument" in result:
        return str(result["policyDocument"]["Statement"][0]["Effect"])
    return json.dumps(result, default=str)[:60]


def _http_invoker(app: Any, request: dict[str, Any]) -> Any:
    """Send one HTTP request to an ASGI app in this process, as the Web Adapter sends it to uvicorn."""
    import asyncio

    import httpx  # after the timed import: a dependency of the harness, not necessarily of the app

    async def call() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.request(request["method"], request["path"], headers=request.get("headers"))
            return {"statusCode": response.status_code}

    return lambda: asyncio.run(call())


class _Unstarted:
    """An orchestrator that records the execution it was asked to start instead of starting it."""

    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []

    def start(self, tenant: str, thread_id: str, run_id: str, *, event_seq: int = 0) -> None:
        # What run.asl.json's AgentStep state passes the agent step for a new run's first turn.
        self.inputs.append({"tenant": tenant, "thread_id": thread_id, "run_id": run_id, "event_seq": event_seq})


def queue_runs(name: str, path: str) -> None:
    """Create a queued run on each given thread, its execution not started (see the docstring)."""
    template = cfn.load_template()
    functions = Functions({name: cfn.functions(template)[name]})
    apply_function_environment(functions.specs, cfn.planned_resolver(template))
    from assistants_core.repository import default_repository
    from assistants_core.services.runs import create_run
    from assistants_core.types.run import RunCreateParams

    with open(path) as handle:
        wanted = json.load(handle)
    orchestrator = _Unstarted()
    for run in wanted:
        params = RunCreateParams(assistant_id=run["assistant_id"])
        create_run(default_repository(), orchestrator, run["tenant"], run["thread_id"], params)  # type: ignore[arg-type]
    with open(path, "w") as handle:
        json.dump(orchestrator.inputs, handle)


def measure(name: str, event: dict[str, Any], warm_event: dict[str, Any] | None = None) -> dict[str, Any]:
    template = cfn.load_template()
    specs = cfn.functions(template)
    functions = Functions({name: specs[name]})
    apply_function_environment(functions.specs, cfn.planned_resolver(template))
    started, started_cpu = time.perf_counter(), time.process_time()
    module = functions.module(name)
    imported, imported_cpu = time.perf_counter(), time.process_time()
    if "http" in event:
        invoke = _http_invoker(module.app, event["http"])
        invoke_warm = invoke
    else:
        handler = functions.handler(name)

        def invoker(payload: dict[str, Any]) -> Any:
            return lambda: handler(json.loads(json.dumps(payload)), LambdaContext(function_name=name))

        invoke, invoke_warm = invoker(event), invoker(warm_event or event)

    began, began_cpu = time.perf_counter(), time.process_time()
    first = invoke()
    first_s, first_cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
    peak_mb = peak_rss_mb()
    began = time.perf_counter()
    second = invoke_warm()
    warm_s = time.perf_counter() - began
    return {
        "import_s": imported - started,
        "first_ms": first_s * 1000,
        # CPU time (all threads): what a busy shared machine inflates far less than wall time.
        "import_cpu_s": imported_cpu - started_cpu,
        "first_cpu_ms": first_cpu_s * 1000,
        "warm_ms": warm_s * 1000,
        "peak_mb": peak_mb,
        "first_status": _status(first),
        "warm_status": _status(second),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--function", required=True)
    parser.add_argument("--queue-runs", help="create queued runs (see the docstring) instead of measuring")
    parser.add_argument("--event", help="a JSON file: the event, or {} for import only")
    parser.add_argument("--warm-event", help="a JSON file: the second invocation's event (default: --event)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.queue_runs:
        queue_runs(args.function, args.queue_runs)
        return
    with open(args.event) as handle:
        event = json.load(handle)
    warm_event = None
    if args.warm_event:
        with open(args.warm_event) as handle:
            warm_event = json.load(handle)
    if event:
        figures = measure(args.function, event, warm_event)
    else:  # no invocation could be prepared: the import alone
        template = cfn.load_template()
        functions = Functions({args.function: cfn.functions(template)[args.function]})
        apply_function_environment(functions.specs, cfn.planned_resolver(template))
        started = time.perf_counter()
        functions.module(args.function)
        figures = {
            "import_s": time.perf_counter() - started,
            "peak_mb": peak_rss_mb(),
        }
    with open(args.out, "w") as handle:
        json.dump(figures, handle)


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    main()
