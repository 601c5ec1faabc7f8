"""One cold start of one function, in the fresh process this module runs in (``tests.bench_cold``).

``python -m tests.harness.cold_start --function NAME --event FILE --out FILE``: apply the
function's template environment (as the local stack does), import its handler module as Lambda
would (``local.lambda_runtime.Functions``: its module-level warm-up included), invoke it twice
with the event, and write the figures as JSON to ``--out`` (stdout is the function's logs).

Only the standard library and ``local`` (PyYAML, for the template) are imported before the timed
import, so that the import figure is the function's own. An event ``{"http": {...}}`` is an HTTP
request to the function's ASGI app (the runs function, which the Lambda Web Adapter serves over
HTTP on AWS) rather than a Lambda event.
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


def measure(name: str, event: dict[str, Any]) -> dict[str, Any]:
    template = cfn.load_template()
    specs = cfn.functions(template)
    functions = Functions({name: specs[name]})
    apply_function_environment(functions.specs, cfn.planned_resolver(template))
    started = time.perf_counter()
    module = functions.module(name)
    imported = time.perf_counter()
    if "http" in event:
        invoke = _http_invoker(module.app, event["http"])
    else:
        handler = functions.handler(name)

        def invoke() -> Any:
            return handler(json.loads(json.dumps(event)), LambdaContext(function_name=name))

    began = time.perf_counter()
    first = invoke()
    first_s = time.perf_counter() - began
    peak_mb = peak_rss_mb()
    began = time.perf_counter()
    second = invoke()
    warm_s = time.perf_counter() - began
    return {
        "import_s": imported - started,
        "first_ms": first_s * 1000,
        "warm_ms": warm_s * 1000,
        "peak_mb": peak_mb,
        "first_status": _status(first),
        "warm_status": _status(second),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--function", required=True)
    parser.add_argument("--event", required=True, help="a JSON file: the event, or {} for import only")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.event) as handle:
        event = json.load(handle)
    if event:
        figures = measure(args.function, event)
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
