"""API keys: the local stack's restricted mode and the key CLI against the real authorizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from local.lambda_runtime import free_port
from tests.conftest import ROOT, start_local_stack, stop


@pytest.fixture(scope="module")
def restricted_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    aws_port = free_port()
    env = {"ASSISTANTS_API_KEYS": "key-alpha=team-a, key-beta=team-b, key-gamma", "LOCAL_AWS_PORT": str(aws_port)}
    process, url = start_local_stack(tmp_path_factory.mktemp("keys") / "local-stack.log", env)
    yield url, f"http://127.0.0.1:{aws_port}"
    stop(process)


def _client(url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_only_listed_keys_work_and_each_maps_to_its_tenant(restricted_stack: tuple[str, str]) -> None:
    url, _ = restricted_stack
    with pytest.raises(openai.AuthenticationError) as denied:
        _client(url, "key-unknown").beta.assistants.list()
    assert denied.value.status_code == 401
    assert denied.value.body["code"] == "invalid_api_key"

    alpha, beta, gamma = (_client(url, k) for k in ("key-alpha", "key-beta", "key-gamma"))
    mine = alpha.beta.assistants.create(model="gpt-4o", name="alpha's")
    assert [a.id for a in alpha.beta.assistants.list()] == [mine.id]
    assert beta.beta.assistants.list().data == []
    assert gamma.beta.assistants.list().data == []  # a bare key is a tenant of its own
    with pytest.raises(openai.NotFoundError):
        beta.beta.assistants.retrieve(mine.id)


def _cli(aws_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": f"{ROOT / 'layers' / 'core' / 'python'}{os.pathsep}{ROOT}",
    }
    return subprocess.run(
        [sys.executable, "-m", "assistants_core.api_keys", "--table", "AssistantsTable", *args],
        env=env,
        cwd=Path(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_key_cli_creates_lists_and_revokes(restricted_stack: tuple[str, str]) -> None:
    url, aws_url = restricted_stack
    created = _cli(aws_url, "create", "team-cli", "--name", "ci")
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["api_key"].startswith("sk-sa-") and issued["tenant_id"] == "team-cli"

    client = _client(url, issued["api_key"])  # the authorizer accepts the new key at once
    assert client.beta.assistants.create(model="gpt-4o").object == "assistant"
    assert len(client.beta.assistants.list().data) == 1

    listed = _cli(aws_url, "list")
    assert listed.returncode == 0
    line = next(row for row in listed.stdout.splitlines() if "team-cli" in row)
    assert "active" in line and issued["key_hash"] in line
    assert "key-alpha" not in listed.stdout  # only hashes are stored

    revoked = _cli(aws_url, "revoke", issued["key_hash"])
    assert revoked.returncode == 0, revoked.stderr
    relisted = _cli(aws_url, "list").stdout
    assert "revoked" in next(row for row in relisted.splitlines() if "team-cli" in row)
    assert _cli(aws_url, "revoke", "ffffffffffff").returncode == 2
    assert _cli(aws_url, "create", "bad tenant!").returncode != 0
