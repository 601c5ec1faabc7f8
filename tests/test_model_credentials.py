"""Provider credentials: SSM parameters (and a secret) become environment variables for litellm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from assistants_core.agent import model
from tests.conftest import ROOT

PATH = "/serverless-assistants/providers/"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(model, "_credentials_loaded", False)
    with mock_aws():
        yield


def test_ssm_parameters_and_a_secret_become_variables(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=PATH + "SA_TEST_PROVIDER_KEY", Value="from-ssm", Type="SecureString")
    ssm.put_parameter(Name=PATH + "SA_TEST_ALREADY_SET", Value="from-ssm", Type="SecureString")
    boto3.client("secretsmanager").create_secret(
        Name="providers", SecretString=json.dumps({"SA_TEST_SECRET": "s3cret"})
    )
    monkeypatch.setenv("MODEL_CREDENTIALS_PATH", PATH)
    monkeypatch.setenv("MODEL_CREDENTIALS_SECRET", "providers")
    monkeypatch.setenv("SA_TEST_ALREADY_SET", "from-environment")
    for name in ("SA_TEST_PROVIDER_KEY", "SA_TEST_SECRET"):
        monkeypatch.delenv(name, raising=False)

    model.load_provider_credentials()

    assert os.environ["SA_TEST_PROVIDER_KEY"] == "from-ssm"
    assert os.environ["SA_TEST_SECRET"] == "s3cret"
    assert os.environ["SA_TEST_ALREADY_SET"] == "from-environment"  # the environment wins


def test_missing_parameters_are_not_an_error(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CREDENTIALS_PATH", "/nothing/here/")
    monkeypatch.setenv("MODEL_CREDENTIALS_SECRET", "no-such-secret")
    model.load_provider_credentials()  # Bedrock through IAM needs no keys at all
    assert model._credentials_loaded is True


def test_force_reloads_rotated_values_but_the_environment_still_wins(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a SnapStart after-restore hook relies on: a second load with ``force`` reads the stored
    values again and replaces those loaded before, never a variable the environment set itself."""
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=PATH + "SA_TEST_ROTATED", Value="first", Type="SecureString")
    monkeypatch.setenv("MODEL_CREDENTIALS_PATH", PATH)
    monkeypatch.delenv("MODEL_CREDENTIALS_SECRET", raising=False)
    monkeypatch.delenv("SA_TEST_ROTATED", raising=False)
    monkeypatch.setenv("SA_TEST_OWN", "from-environment")
    ssm.put_parameter(Name=PATH + "SA_TEST_OWN", Value="from-ssm", Type="SecureString")
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # an earlier test's read of the same path
    model.load_provider_credentials()
    assert os.environ["SA_TEST_ROTATED"] == "first"
    ssm.put_parameter(Name=PATH + "SA_TEST_ROTATED", Value="second", Type="SecureString", Overwrite=True)
    model.load_provider_credentials()  # once per environment: not read again
    assert os.environ["SA_TEST_ROTATED"] == "first"
    model.load_provider_credentials(force=True)  # past Powertools' 5-minute cache, too
    assert os.environ["SA_TEST_ROTATED"] == "second"
    assert os.environ["SA_TEST_OWN"] == "from-environment"


def test_the_agent_step_imports_without_network_or_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network call at import (issue 11: credentials load before the first model call), and
    no litellm: the direct route never needs it, the others load it on their first call."""
    code = (
        "import socket, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('network call at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import runpy\n"
        "runpy.run_path('functions/agent_step/app.py')\n"
        "print(sorted(m for m in ('litellm', 'openai', 'tiktoken') if m in sys.modules))\n"
    )
    env = {**os.environ, "MODEL_CREDENTIALS_PATH": PATH, "MODEL_CREDENTIALS_SECRET": "providers"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "core" / "python"), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
