"""The local stack with its tables on DynamoDB Local (as ``make bench`` runs it).

``AWS_ENDPOINT_URL_DYNAMODB`` moves the app's DynamoDB to DynamoDB Local while Step Functions
stays in the emulator. The state machine's own DynamoDB call (the ``waitForTaskToken``
UpdateItem that parks a run on its task token) must follow: if it wrote to the emulator's
DynamoDB instead, the run item on DynamoDB Local would never get its token and
``submit_tool_outputs`` could not resume the run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest
from boto3.dynamodb.conditions import Attr
from openai import OpenAI

from local.template import REGION
from tests.conftest import stack_in_background
from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.harness.scenario import WEATHER_TOOL, script

pytestmark = pytest.mark.slow

# DynamoDB Local keeps tables per access key (letters and digits only): the stack and this test
# use the same one.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "localstack", "AWS_SECRET_ACCESS_KEY": "localstack"}


def dynamodb(endpoint_url: str) -> dict[str, Any]:
    """Where the stack's tables are, and as whom: for boto3.client and boto3.resource."""
    return {
        "service_name": "dynamodb",
        "endpoint_url": endpoint_url,
        "region_name": REGION,
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def tables(dynamodb_local_tables: dict[str, str]) -> dict[str, str]:
    return dynamodb_local_tables


@pytest.fixture(scope="module")
def stack_on_dynamodb_local(
    fake_llm: FakeLLM, dynamodb_local_endpoint: str, tables: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local_endpoint, **CREDENTIALS}
    with stack_in_background(fake_llm, tmp_path_factory, "stack-dynamodb-local", env) as stack:
        yield stack.result(timeout=120)[1]


def test_a_tool_calling_run_parks_and_resumes_on_dynamodb_local(
    stack_on_dynamodb_local: str,
    dynamodb_local_endpoint: str,
    tables: dict[str, str],
    fake_llm: FakeLLM,
    model: str,
    api_key: str,
) -> None:
    client = OpenAI(base_url=f"{stack_on_dynamodb_local}/v1", api_key=api_key, max_retries=0, timeout=60)
    script(fake_llm, model, tool_calls([("call_oslo", "get_weather", {"city": "Oslo"})]), text("Oslo: 3C"))
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Oslo?"}])

    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "requires_action"

    table = boto3.resource(**dynamodb(dynamodb_local_endpoint)).Table(tables["AssistantsTable"])
    # The run lives on DynamoDB Local, where the state machine stores its task token just after
    # the agent step returns (so a moment after the stream ended).
    deadline = time.monotonic() + 10
    while True:
        parked = table.scan(FilterExpression=Attr("SK").contains(run.id))["Items"]
        if any("task_token" in item for item in parked) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert any("task_token" in item for item in parked), parked

    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": "call_oslo", "output": "3C"}]
    ) as stream:
        answer = "".join(stream.text_deltas)
        final = stream.get_final_run()
    assert answer == "Oslo: 3C"
    assert final.status == "completed"


def test_idempotency_keys_hold_on_dynamodb_local(stack_on_dynamodb_local: str, api_key: str) -> None:
    """Powertools' conditional writes (ReturnValuesOnConditionCheckFailure included) on a real
    DynamoDB engine: a replay, another body, and duplicates racing for one key."""
    headers = {"Authorization": f"Bearer {api_key}"}
    key = {"Idempotency-Key": f"test-{uuid.uuid4()}"}
    with httpx.Client(base_url=stack_on_dynamodb_local, headers=headers, timeout=30) as http:
        first = http.post("/v1/assistants", json={"model": "gpt-4o", "name": "one"}, headers=key)
        again = http.post("/v1/assistants", json={"model": "gpt-4o", "name": "one"}, headers=key)
        other = http.post("/v1/assistants", json={"model": "gpt-4o", "name": "two"}, headers=key)
        assert first.status_code == again.status_code == 200 and again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
        assert [a["id"] for a in http.get("/v1/assistants").json()["data"]] == [first.json()["id"]]

        thread = http.post("/v1/threads", json={}).json()["id"]
        key = {"Idempotency-Key": f"test-{uuid.uuid4()}"}

        def post(_: int) -> httpx.Response:
            return http.post(f"/v1/threads/{thread}/messages", json={"role": "user", "content": "once"}, headers=key)

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(post, range(4)))
        assert {a.status_code for a in answers} <= {200, 409} and 200 in {a.status_code for a in answers}
        assert len(http.get(f"/v1/threads/{thread}/messages").json()["data"]) == 1
