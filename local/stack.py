"""The local stack: the whole API on one port, no Docker, no AWS account.

Two processes, split where AWS splits: API Gateway and the API functions it calls, and the AWS
services with the functions Step Functions invokes. What runs where, and stands in for what:

- This process (``python -m local``, what ``make dev`` runs) serves HOST:PORT with the
  :class:`~local.gateway.Gateway`, which plays API Gateway in front of the functions that have
  ``Api`` events; the others are not even imported here.
- A child process (:mod:`local.aws`) emulates the AWS services with moto in server mode, on
  ``LOCAL_AWS_PORT`` or a free port. The app reaches them only through ``AWS_ENDPOINT_URL``. It
  creates the template's resources and runs the handlers of the functions Step Functions
  invokes (moto cannot run code without Docker). It logs where this process logs, and exits
  with it.

``/health`` answers only once both are ready. ``POST /_local/faults {"function": name, "times":
n}`` (tests only) makes the next n invocations of a function crash, in whichever process runs it
(with ``"after_ms": ms`` they are killed that long into their handler, as Lambda kills a crashed
or timed-out environment, or sooner by ``{"function": name, "kill": true}``; see
:class:`local.lambda_runtime.Fault`); ``{"function": name, "restore": true}`` makes a SnapStart
function's next invocation run in a freshly restored environment (its after-restore hooks first);
``{"operation": name, "error": code, "times": n}`` makes the next n calls of an emulated AWS
operation answer that error (AgentCore Code Interpreter operations, see
:meth:`local.emulator.agentcore.AgentCore.inject_fault`). With ``LOCAL_CPU_METER=1``,
``GET /_local/cpu`` answers the CPU seconds each function has used so far in either process
(:mod:`local.cpu_meter`, for ``make bench``).

Keys: with ``ASSISTANTS_API_KEYS`` (``key=tenant,key2=tenant2``; a bare ``key`` is its own
tenant) only those keys work. Without it, any key works and each distinct key is its own
tenant, so the OpenAI SDK runs with whatever key it has.
"""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass
from typing import Any

from . import cpu_meter, meter
from . import template as cfn
from .aws import AWSProcess
from .gateway import Gateway, gateway_functions
from .lambda_runtime import Functions, apply_function_environment


def tenant_for_open_key(api_key: str) -> str:
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def parse_key_list(raw: str) -> dict[str, str]:
    """``ASSISTANTS_API_KEYS`` as key -> tenant; a bare key is its own tenant."""
    return {key: tenant or tenant_for_open_key(key) for key, tenant in cfn.parse_assignments(raw).items()}


@dataclass
class LocalStack:
    app: Gateway
    aws: AWSProcess


def build(aws_port: int | None = None) -> LocalStack:
    """Start the emulated AWS (a child process) and return the gateway app once it is ready.

    The caller stops ``aws`` when done (the child also exits by itself when this process does).
    """
    template = cfn.load_template()
    if cpu_meter.ENABLED:
        cpu_meter.install()
    aws = AWSProcess(aws_port)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": aws.endpoint_url,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": cfn.REGION,
            "AWS_REGION": cfn.REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    specs = cfn.functions(template)
    served_here = gateway_functions(template, specs)
    aws.start(name for name in specs if name not in served_here)  # inherits the environment so far
    try:
        if meter.ENABLED:  # before any function creates its clients
            meter.install()
        functions = Functions({name: spec for name, spec in specs.items() if name in served_here})
        apply_function_environment(functions.specs, cfn.planned_resolver(template))
        functions.load_all()  # while the emulated AWS starts, on another core
        aws.wait_ready()

        from assistants_core.api_keys import store_key
        from assistants_core.repository import Repository

        raw_keys = os.environ.get("ASSISTANTS_API_KEYS", "").strip()
        known: set[str] = set()

        def auto_tenant(api_key: str) -> None:
            if api_key not in known:
                store_key(Repository(), api_key, tenant_for_open_key(api_key), name="local (auto)")
                known.add(api_key)

        for key, tenant in parse_key_list(raw_keys).items():
            store_key(Repository(), key, tenant, name="local (ASSISTANTS_API_KEYS)")
        gateway = Gateway(
            template,
            functions,
            open_keys=not raw_keys,
            auto_tenant=auto_tenant,
            forward_fault=aws.inject_fault,
            forward_meter=aws.meter,
            aws_cpu=aws.cpu,
        )
    except BaseException:
        aws.stop()
        raise
    return LocalStack(app=gateway, aws=aws)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so ``main`` stops the emulated AWS before exiting."""
    raise SystemExit(128 + signum)


def main() -> None:
    import uvicorn

    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # uvicorn restores it and re-raises after shutdown
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    aws_port = int(os.environ["LOCAL_AWS_PORT"]) if os.environ.get("LOCAL_AWS_PORT") else None
    try:
        stack = build(aws_port)
    except KeyboardInterrupt:  # Ctrl-C while starting: build() stopped the emulated AWS already
        raise SystemExit(130) from None
    try:
        url = f"http://{host}:{port}"
        keys_note = (
            "keys from ASSISTANTS_API_KEYS"
            if os.environ.get("ASSISTANTS_API_KEYS")
            else "any API key works; each distinct key is its own tenant"
        )
        print(
            f"""
Serverless Assistants local stack (emulated AWS at {stack.aws.endpoint_url}, pid {stack.aws.pid})
  API:     {url}/v1   ({keys_note})
  Health:  {url}/health

  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="sk-local")
  assistant = client.beta.assistants.create(model="openai/gpt-4o-mini", name="Helper")
""",
            flush=True,
        )
        uvicorn.run(stack.app, host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "warning").lower())
    finally:
        stack.aws.stop()
