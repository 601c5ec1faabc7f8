"""pytest fixtures: moto with the local stack's emulator, and the repository against moto and
against DynamoDB Local, over HTTP.

``tests/conftest.py`` imports these, so every test module can ask for them and a session
fixture (one DynamoDB Local) is shared by all. The functions are
called ``<fixture>_fixture`` and registered under ``name=<fixture>``, so importing them does
not shadow the test arguments (ruff F811).

* ``moto_endpoint`` / ``dynamodb_local_endpoint`` - one server per session. moto runs in a
  thread with every fix and addition of :mod:`local.emulator` (S3 Vectors included), and
  answers one DynamoDB request at a time (see :func:`local.emulator.server._serialized`).
* ``dynamo_engine`` - parametrized over ``"moto"`` and ``"dynamodb-local"``: (name, endpoint).
* ``assistants_table`` - a fresh copy of the template's ``AssistantsTable`` under a unique name,
  created with :func:`local.template.create_tables` (so keys and TTL come from
  ``template.yaml``), deleted after the test.
* ``repo`` - an :class:`assistants_core.repository.Repository` on that table, its large values
  in a bucket of moto's S3 (``content_blobs``) whichever the engine.

boto3 resources are not thread-safe: a test that writes from threads gives each thread its own
repository via :func:`repository_for`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from assistants_core.blobs import BlobStore
from assistants_core.repository import Repository
from local.emulator.server import emulated_moto
from local.template import create_tables, load_template, resources
from tests.harness.dynamodb_local import DynamoDBLocal, DynamoDBLocalUnavailable

__all__ = [
    "ENGINES",
    "DynamoEngine",
    "assistants_table_fixture",
    "content_blobs_fixture",
    "dynamo_client",
    "dynamo_engine_fixture",
    "dynamo_resource",
    "dynamodb_local_endpoint_fixture",
    "moto_endpoint_fixture",
    "repo_fixture",
    "repository_for",
]

ENGINES = ("moto", "dynamodb-local")
ASSISTANTS_TABLE = "AssistantsTable"
REGION = "us-east-1"
_CREDENTIALS = {"region_name": REGION, "aws_access_key_id": "test", "aws_secret_access_key": "test"}
# Fail fast instead of retrying: a throttled or broken local engine should show up as an error.
_CONFIG = Config(retries={"max_attempts": 1}, max_pool_connections=32)


@dataclass(frozen=True)
class DynamoEngine:
    name: str
    endpoint_url: str


def dynamo_client(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint_url, config=_CONFIG, **_CREDENTIALS)


def dynamo_resource(endpoint_url: str) -> Any:
    return boto3.resource("dynamodb", endpoint_url=endpoint_url, config=_CONFIG, **_CREDENTIALS)


def repository_for(table_name: str, endpoint_url: str, blobs: BlobStore | None = None) -> Repository:
    """A repository with its own boto3 session objects (one per thread); S3 clients are
    thread-safe, so ``blobs`` may be shared."""
    return Repository(table_name, dynamodb=dynamo_resource(endpoint_url), blobs=blobs)


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    with emulated_moto() as endpoint:  # as the local stack runs moto: every fix of local.emulator
        yield endpoint


@pytest.fixture(scope="session", name="dynamodb_local_endpoint")
def dynamodb_local_endpoint_fixture() -> Iterator[str]:
    """DynamoDB Local for the session.

    Without Java or the jar the DynamoDB Local cases are skipped, unless DYNAMODB_LOCAL_DIR is
    set (``make test`` sets it): then a missing engine is an error, not a silent skip.
    """
    problem = None
    try:
        local = DynamoDBLocal().start()
    except DynamoDBLocalUnavailable as error:
        problem = str(error)
    if problem is not None:
        if os.environ.get("DYNAMODB_LOCAL_DIR"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(f"DynamoDB Local unavailable: {problem}")
    try:
        yield local.endpoint_url
    finally:
        local.stop()


_ENGINE_PARAMS = [pytest.param("moto"), pytest.param("dynamodb-local", marks=pytest.mark.slow)]


@pytest.fixture(params=_ENGINE_PARAMS, name="dynamo_engine")
def dynamo_engine_fixture(request: pytest.FixtureRequest) -> DynamoEngine:
    """Each engine in turn; the DynamoDB Local case is marked ``slow`` (``make test-fast`` skips it)."""
    fixture = "moto_endpoint" if request.param == "moto" else "dynamodb_local_endpoint"
    return DynamoEngine(request.param, request.getfixturevalue(fixture))


@pytest.fixture(name="assistants_table")
def assistants_table_fixture(dynamo_engine: DynamoEngine) -> Iterator[str]:
    """The template's tables under unique names; yields the AssistantsTable copy's name."""
    template = load_template()
    suffix = uuid.uuid4().hex[:12]
    tables = resources(template, "AWS::DynamoDB::Table")
    if ASSISTANTS_TABLE not in tables:
        raise LookupError(f"template.yaml declares no {ASSISTANTS_TABLE} (tables: {sorted(tables)})")
    # create_tables names each table after its logical id, so rename the logical ids.
    renamed = {"Resources": {f"{name}-{suffix}": resource for name, resource in tables.items()}}
    client = dynamo_client(dynamo_engine.endpoint_url)
    created = create_tables(client, renamed)
    try:
        yield created[f"{ASSISTANTS_TABLE}-{suffix}"]
    finally:
        for name in created.values():
            client.delete_table(TableName=name)


@pytest.fixture(name="content_blobs")
def content_blobs_fixture(moto_endpoint: str) -> BlobStore:
    """A bucket on moto's S3 for the repository's large values (DynamoDB Local has no S3).

    One per test: moto's server runs in this process, and a test's ``mock_aws()`` resets every
    backend of the process when it ends, buckets included."""
    client = boto3.client("s3", endpoint_url=moto_endpoint, config=_CONFIG, **_CREDENTIALS)
    bucket = f"repository-content-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return BlobStore(bucket, client=client)


@pytest.fixture(name="repo")
def repo_fixture(dynamo_engine: DynamoEngine, assistants_table: str, content_blobs: BlobStore) -> Repository:
    return repository_for(assistants_table, dynamo_engine.endpoint_url, content_blobs)
