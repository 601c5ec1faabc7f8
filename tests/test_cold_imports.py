"""What a cold import of a function does: no network call, and X-Ray only where it traces.

Each function of template.yaml is imported in a fresh process (``tests.harness.import_guard``)
with its template environment and what Lambda sets (``LAMBDA_TASK_ROOT``, a region, credentials,
tracing on as ``Tracing: Active`` has it), while every connect, UDP send and name lookup is
refused and recorded: an import that reaches out (a module-level boto3 call, a download) would
slow every cold start and fail where the network is not there yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from local import template as cfn

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = sorted(cfn.functions(cfn.load_template()))
TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def lambda_env(**extra: str) -> dict[str, str]:
    """What a function's process starts with on Lambda (no AWS_ENDPOINT_URL: AWS itself)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": f"{ROOT / 'layers' / 'core' / 'python'}{os.pathsep}{ROOT}",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "function",
        "AWS_REGION": cfn.REGION,
        "AWS_DEFAULT_REGION": cfn.REGION,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
    }
    return {**env, **extra}


def guarded_import(tmp_path: Path, *target: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "tests.harness.import_guard", *target, "--out", str(out)],
        cwd=ROOT,
        env=env or lambda_env(),
        check=True,
        timeout=300,
        capture_output=True,
    )
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.parametrize("function", FUNCTIONS)
def test_importing_a_function_makes_no_network_call(function: str, tmp_path: Path) -> None:
    report = guarded_import(tmp_path, "--function", function)
    assert report["error"] is None, report["error"]
    assert report["attempts"] == [], f"{function}'s import tried to reach {report['attempts']}"


def test_the_guard_sees_a_module_level_boto3_call(tmp_path: Path) -> None:
    """The check above can fail: a module that calls AWS at import is caught (and its import
    fails, as it would where the network is not reachable)."""
    app = tmp_path / "app.py"
    app.write_text("import boto3\n\nBUCKETS = boto3.client('s3').list_buckets()\n")
    report = guarded_import(tmp_path, "--file", str(app))
    assert any("s3.amazonaws.com" in attempt for attempt in report["attempts"]), report
    assert report["error"] is not None


TRACED_HANDLER = textwrap.dedent(
    """
    import json, sys
    from fastapi import FastAPI
    from assistants_core.api.lambda_entry import mangum_handler
    from tests.test_handlers import FakeLambdaContext, load_event

    app = FastAPI()
    app.get("/health")(lambda: {"status": "ok"})
    handler = mangum_handler(app)  # reads the environment, as the function's import does
    sent = []
    if "aws_xray_sdk.core" in sys.modules:
        from aws_xray_sdk.core import xray_recorder

        class Emitter:  # what the X-Ray daemon would receive
            def send_entity(self, entity):
                sent.append(entity.to_dict())

            def set_daemon_address(self, address):
                pass

        xray_recorder.configure(emitter=Emitter())
    response = handler(load_event("health"), FakeLambdaContext())
    imported = sorted(name for name in sys.modules if name.startswith("aws_xray_sdk"))
    print(json.dumps({"status": response["statusCode"], "xray": imported, "sent": sent}))
    """
)


def run_traced_handler(env: dict[str, str]) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-c", TRACED_HANDLER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 0, process.stderr[-3000:]
    result: dict[str, Any] = json.loads(process.stdout.strip().splitlines()[-1])
    return result


def test_an_api_handler_is_traced_where_tracing_is_on() -> None:
    """On Lambda with tracing on (the template's ``Tracing: Active``), the handler runs in
    Powertools' ``## handler`` subsegment, which reaches the X-Ray daemon with the cold start
    annotated, and the AWS clients are patched."""
    result = run_traced_handler(lambda_env(_X_AMZN_TRACE_ID=TRACE_ID, POWERTOOLS_SERVICE_NAME="assistants"))
    assert result["status"] == 200
    assert "aws_xray_sdk.ext.botocore" in result["xray"]  # Tracer patched boto3's calls
    (subsegment,) = [entity for entity in result["sent"] if entity["name"] == "## handler"]
    assert subsegment["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert subsegment["annotations"] == {"ColdStart": True, "Service": "assistants"}


@pytest.mark.parametrize(
    "env",
    [lambda_env(POWERTOOLS_TRACE_DISABLED="true", _X_AMZN_TRACE_ID=TRACE_ID), {**lambda_env(), "LAMBDA_TASK_ROOT": ""}],
    ids=["POWERTOOLS_TRACE_DISABLED", "outside Lambda"],
)
def test_where_tracing_is_off_the_xray_sdk_is_not_imported(env: dict[str, str]) -> None:
    """Where Powertools would not trace, no Tracer is made: the X-Ray SDK's import (and,
    outside Lambda, its botocore client) is not part of the cold start, and the handler answers."""
    result = run_traced_handler(env)
    assert result["status"] == 200
    assert result["xray"] == [] and result["sent"] == []
