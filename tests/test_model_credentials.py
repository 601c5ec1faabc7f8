"""Provider credentials: SSM parameters (and a secret) become environment variables for litellm."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from assistants_core.agent import model

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
