"""API keys: the local stack's restricted mode, the key CLI against the real authorizer, the
authorizer cache's bound on a revoked key, and each key's last use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from assistants_core import api_keys
from assistants_core.repository import Repository
from local.lambda_runtime import free_port
from tests.conftest import ROOT, start_local_stack, stop

CACHE_SECONDS = 8  # long enough for a loaded machine to use the key again before it expires


@pytest.fixture(scope="module")
def restricted_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    aws_port = free_port()
    env = {
        "ASSISTANTS_API_KEYS": "key-alpha=team-a, key-beta=team-b, key-gamma",
        "LOCAL_AWS_PORT": str(aws_port),
        # API Gateway caches an authorizer's answer per key this long (template default 300).
        "LOCAL_PARAMETERS": f"AuthorizerCacheSeconds={CACHE_SECONDS}",
    }
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


def _listed(aws_url: str, key_hash: str) -> dict[str, object]:
    listed = _cli(aws_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return next(row for row in map(json.loads, listed.stdout.splitlines()) if row["key_hash"].startswith(key_hash))


def test_a_revoked_key_stops_working_once_the_authorizer_cache_expires(
    restricted_stack: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, aws_url = restricted_stack
    issued = json.loads(_cli(aws_url, "create", "team-revoked").stdout)
    client = _client(url, issued["api_key"])
    client.beta.assistants.list()  # the authorizer allows the key; API Gateway caches that
    cached_at = time.monotonic()

    # The CLI's revoke, in this process so that it takes milliseconds, not a Python start-up.
    for name, value in {
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }.items():
        monkeypatch.setenv(name, value)
    assert api_keys.main(["--table", "AssistantsTable", "revoke", issued["key_hash"]]) == 0
    assert api_keys.tenant_for_key(Repository("AssistantsTable"), issued["api_key"]) is None

    # Within the cache's time the key still works, as on API Gateway...
    client.beta.assistants.list()
    assert time.monotonic() - cached_at < CACHE_SECONDS, "the machine was too slow to see the cached answer"
    # ...and once it has passed, never again.
    time.sleep(max(0.0, cached_at + CACHE_SECONDS + 0.2 - time.monotonic()))
    for _ in range(2):
        with pytest.raises(openai.AuthenticationError):
            client.beta.assistants.list()


def test_the_key_cli_lists_each_keys_last_use(restricted_stack: tuple[str, str]) -> None:
    url, aws_url = restricted_stack
    issued = json.loads(_cli(aws_url, "create", "team-last-use", "--name", "used").stdout)
    row = _listed(aws_url, issued["key_hash"])
    assert row["last_used_at"] is None and row["tenant_id"] == "team-last-use" and row["name"] == "used"
    assert "never used" in next(line for line in _cli(aws_url, "list").stdout.splitlines() if "team-last-use" in line)

    before = int(time.time())
    _client(url, issued["api_key"]).beta.assistants.list()
    used_at = _listed(aws_url, issued["key_hash"])["last_used_at"]
    assert isinstance(used_at, int) and before - 1 <= used_at <= time.time() + 1
    line = next(line for line in _cli(aws_url, "list").stdout.splitlines() if "team-last-use" in line)
    assert time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(used_at)) in line


def test_a_keys_use_is_written_at_most_once_per_granularity(repo: Repository) -> None:
    api_key, record = api_keys.create_key(repo, "team-writes")
    item_key = {"PK": "APIKEY", "SK": "KEY#" + record.key_hash}

    def stored() -> int | None:
        value = repo.table.get_item(Key=item_key, ConsistentRead=True)["Item"].get("last_used_at")
        return None if value is None else int(value)

    assert stored() is None
    assert api_keys.tenant_for_key(repo, api_key) == "team-writes"
    first = stored()
    assert first is not None and abs(first - time.time()) < 5

    recent = first - 60  # used a minute ago: within the granularity, so no write
    repo.table.update_item(
        Key=item_key, UpdateExpression="SET last_used_at = :t", ExpressionAttributeValues={":t": recent}
    )
    assert api_keys.tenant_for_key(repo, api_key) == "team-writes"
    assert stored() == recent

    stale = first - api_keys.LAST_USED_GRANULARITY_SECONDS - 1
    repo.table.update_item(
        Key=item_key, UpdateExpression="SET last_used_at = :t", ExpressionAttributeValues={":t": stale}
    )
    assert api_keys.tenant_for_key(repo, api_key) == "team-writes"
    assert stored() is not None and stored() != stale  # type: ignore[operator]

    api_keys.revoke_key(repo, record.key_hash)
    repo.table.update_item(
        Key=item_key, UpdateExpression="SET last_used_at = :t", ExpressionAttributeValues={":t": stale}
    )
    assert api_keys.tenant_for_key(repo, api_key) is None
    assert stored() == stale  # a revoked key's attempts are not uses
