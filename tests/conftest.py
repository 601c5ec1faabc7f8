"""Fixtures for the end-to-end tests: a fake LLM and the local stack, started once per session.

Every test gets its own API key, and so (the local stack gives each distinct key its own
tenant) its own tenant: tests cannot see each other's objects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from local.lambda_runtime import free_port
from tests.harness.dynamo_fixtures import (  # noqa: F401 - fixtures, used by name
    assistants_table_fixture,
    content_blobs_fixture,
    dynamo_engine_fixture,
    dynamodb_local_endpoint_fixture,
    moto_endpoint_fixture,
    repo_fixture,
)
from tests.harness.processes import terminate, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:  # noqa: F821
    from tests.harness.fake_llm import FakeLLM

    with FakeLLM() as fake:
        yield fake


def start_local_stack(log_path: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **extra_env}
    env["PYTHONPATH"] = f"{ROOT / 'layers' / 'core' / 'python'}{os.pathsep}{ROOT}"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen([sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(process, f"{url}/health", log_path, "local stack", timeout=90)
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    terminate(process)


@contextmanager
def stack_in_background(
    fake_llm: FakeLLM,  # noqa: F821
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    env: dict[str, str],
) -> Iterator[Future[tuple[subprocess.Popen[bytes], str]]]:
    """Another local stack with ``env`` set, started in a thread so that its start-up overlaps
    the session stack's and other tests; stopped on exit. Yields the future of (process, url)."""
    full_env = {"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "x", "ASSISTANTS_API_KEYS": "", **env}
    log_path = tmp_path_factory.mktemp(name) / "local-stack.log"
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(start_local_stack, log_path, full_env)
    try:
        yield future
    finally:
        executor.shutdown(wait=True)
        if future.exception() is None:
            stop(future.result()[0])


@dataclass(frozen=True)
class Stack:
    url: str  # the API
    aws_endpoint: str  # the emulated AWS, for what a test must see behind the API (vectors, Lambda)
    log_path: Path


@pytest.fixture(scope="session")
def stack(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F821
    aws_port = free_port()
    env = {
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": "fake-llm-key",
        "ASSISTANTS_API_KEYS": "",
        "STREAM_KEEPALIVE_SECONDS": "1",  # so a test can see keep-alive comments without waiting 15 s
        "LOCAL_AWS_PORT": str(aws_port),
        # A code_interpreter call past this is stopped (the template's default is 120 s).
        "LOCAL_PARAMETERS": "CodeInterpreterCallSeconds=10",
    }
    log_path = tmp_path_factory.mktemp("stack") / "local-stack.log"
    process, url = start_local_stack(log_path, env)
    yield Stack(url=url, aws_endpoint=f"http://127.0.0.1:{aws_port}", log_path=log_path)
    stop(process)


@pytest.fixture(scope="session")
def dynamodb_local_tables(dynamodb_local_endpoint: str) -> dict[str, str]:
    """The template's tables on the session's DynamoDB Local, created once: every local stack
    run on it shares them (each test is a tenant of its own)."""
    import boto3

    from local.template import REGION, create_tables, load_template

    credentials = {"aws_access_key_id": "localstack", "aws_secret_access_key": "localstack"}
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local_endpoint, region_name=REGION, **credentials)
    return create_tables(client, load_template())


@pytest.fixture(scope="session")
def stack_url(stack: Stack) -> str:
    return stack.url


@pytest.fixture(scope="session")
def aws(stack: Stack) -> Callable[[str], Any]:
    """A boto3 client of a service of the session stack's emulated AWS (``aws("s3vectors")``)."""
    import boto3

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=stack.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    return client


@pytest.fixture
def model(fake_llm: FakeLLM) -> str:  # noqa: F821
    """A model name of the test's own: the fake LLM scripts answers per model."""
    return f"openai/scenario-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def api_key() -> str:
    return f"sk-test-{uuid.uuid4().hex}"


@pytest.fixture
def client(stack_url: str, api_key: str) -> OpenAI:
    # No retries: a retried 5xx would hide a server error the test must see.
    return OpenAI(base_url=f"{stack_url}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.fixture
def other_client(stack_url: str) -> OpenAI:
    return OpenAI(base_url=f"{stack_url}/v1", api_key=f"sk-other-{uuid.uuid4().hex}", max_retries=0, timeout=60)


@pytest.fixture
def async_client(stack_url: str, api_key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{stack_url}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.fixture
def http(stack_url: str, api_key: str) -> Iterator[httpx.Client]:
    """Raw HTTP, for what the SDK will not send (malformed JSON, missing auth)."""
    with httpx.Client(
        base_url=stack_url,
        headers={"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"},
        timeout=30,
    ) as raw:
        yield raw
