"""/v1/models through the SDK, and the deployment's model allow-list: a model it cannot route
is a 400 in OpenAI's words where it is given, and a run that reaches one anyway fails cleanly."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import boto3
import httpx
import openai
import pytest
from openai import OpenAI

from local.lambda_runtime import free_port
from tests.conftest import stack_in_background
from tests.harness.fake_llm import FakeLLM, text
from tests.harness.openapi_spec import validate_object, validate_response, wire
from tests.harness.scenario import TERMINAL, assert_clean_last_error, bad_request, fake_name, wait_for

UNROUTABLE = ["gpt-nonexistent-foo", "unknownprovider/gpt-4o", "openai/"]


def model_not_found(model: str) -> dict[str, Any]:
    return {
        "message": f"The requested model '{model}' does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def not_found(client: OpenAI, model: str) -> dict[str, Any]:
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve(model)
    body = raised.value.body
    assert isinstance(body, dict)
    return body


# ------------------------------------------------------------------ the endpoints


def test_list_and_retrieve_in_openais_shape(client: OpenAI, http: httpx.Client, model: str) -> None:
    assert client.models.list().data == []  # a new tenant, the default allow-list: nothing named yet
    first = client.beta.assistants.create(model=model)
    client.beta.assistants.create(model="gpt-4o")
    client.beta.assistants.create(model=model, name="second")

    listed = client.models.list()
    assert [m.id for m in listed.data] == sorted([model, "gpt-4o"])
    for item in listed.data:
        assert item.object == "model" and item.owned_by == "openai"
        validate_object("Model", wire(item))
    raw = http.get("/v1/models")
    assert raw.status_code == 200
    validate_response("get", "/v1/models", raw.json())
    assert raw.json()["object"] == "list"

    # The SDK sends "openai%2Fscenario-..."; a client that does not encode the slash works too.
    retrieved = client.models.retrieve(model)
    assert wire(retrieved) == {"id": model, "object": "model", "created": first.created_at, "owned_by": "openai"}
    plain = http.get(f"/v1/models/{model}")
    assert plain.status_code == 200 and plain.json() == wire(retrieved)
    validate_response("get", "/v1/models/{model}", plain.json())
    bedrock = client.models.retrieve("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert (bedrock.id, bedrock.owned_by, bedrock.created) == (
        "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
        "bedrock",
        0,  # no assistant of this tenant uses it
    )

    for unknown in ("gpt-nonexistent-foo", "unknownprovider/gpt-4o"):
        assert not_found(client, unknown) == {
            "message": f"The model `{unknown}` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }


def test_models_need_an_api_key(stack_url: str) -> None:
    for path in ("/v1/models", "/v1/models/gpt-4o", "/v1/models/openai%2Fgpt-4o"):
        response = httpx.get(f"{stack_url}{path}", timeout=10)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"


# ------------------------------------------------------------------ 400s where a model is given


@pytest.mark.parametrize("unroutable", UNROUTABLE)
def test_an_unroutable_model_is_400_where_it_is_given(client: OpenAI, model: str, unroutable: str) -> None:
    assert bad_request(lambda: client.beta.assistants.create(model=unroutable)) == model_not_found(unroutable)
    assert client.beta.assistants.list().data == []

    assistant = client.beta.assistants.create(model=model, name="kept")
    assert bad_request(lambda: client.beta.assistants.update(assistant.id, model=unroutable, name="changed")) == (
        model_not_found(unroutable)
    )
    kept = client.beta.assistants.retrieve(assistant.id)
    assert (kept.model, kept.name) == (model, "kept")

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    runs = client.beta.threads.runs
    assert bad_request(lambda: runs.create(thread.id, assistant_id=assistant.id, model=unroutable)) == (
        model_not_found(unroutable)
    )
    assert runs.list(thread.id).data == []
    client.beta.threads.messages.create(thread.id, role="user", content="The thread is not locked.")
    assert bad_request(
        lambda: client.beta.threads.create_and_run(
            assistant_id=assistant.id, model=unroutable, thread={"messages": [{"role": "user", "content": "Hi"}]}
        )
    ) == model_not_found(unroutable)


def test_a_run_may_name_another_routable_model(client: OpenAI, fake_llm: FakeLLM, model: str) -> None:
    other = f"openai/scenario-{uuid.uuid4().hex[:12]}"
    fake_llm.script(fake_name(other), [text("From the other model.")])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    created = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, model=other)
    run = wait_for(client, thread.id, created.id, TERMINAL)
    assert (run.status, run.model) == ("completed", other), run.last_error
    assert fake_llm.requests(fake_name(model)) == []


# ------------------------------------------------------------------ a deployment's allow-list

ALLOWED = "openai/allowed-*,gpt-4o,hosted_vllm/*"


@pytest.fixture(scope="module")
def restricted(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A stack started with ``AllowedModels``: (its URL, its emulated AWS endpoint)."""
    aws_port = free_port()
    env = {
        "LOCAL_PARAMETERS": f"AllowedModels={ALLOWED},LogLevel=INFO",
        "LOCAL_AWS_PORT": str(aws_port),
        # hosted_vllm models go to a port nothing listens on: the connection is refused.
        "HOSTED_VLLM_API_BASE": f"http://127.0.0.1:{free_port()}/v1",
    }
    started: Future[tuple[subprocess.Popen[bytes], str]]
    with stack_in_background(fake_llm, tmp_path_factory, "restricted", env) as started:
        yield started.result()[1], f"http://127.0.0.1:{aws_port}"


def test_the_allow_list_decides_what_tenants_may_use(restricted: tuple[str, str], fake_llm: FakeLLM) -> None:
    url, _ = restricted
    client = OpenAI(base_url=f"{url}/v1", api_key=f"sk-{uuid.uuid4().hex}", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list().data] == ["gpt-4o"]  # the allow-list's concrete names
    allowed = f"openai/allowed-{uuid.uuid4().hex[:8]}"
    assistant = client.beta.assistants.create(model=allowed)
    assert [m.id for m in client.models.list().data] == sorted(["gpt-4o", allowed])
    assert client.models.retrieve(allowed).owned_by == "openai"
    for refused in ("openai/gpt-4o", "gpt-4o-mini", "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"):
        assert bad_request(lambda m=refused: client.beta.assistants.create(model=m)) == model_not_found(refused)
        assert not_found(client, refused)["code"] == "model_not_found"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    assert bad_request(
        lambda: client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, model="openai/gpt-4o")
    ) == model_not_found("openai/gpt-4o")

    fake_llm.script(fake_name(allowed), [text("Allowed.")])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error


def test_a_run_whose_model_the_allow_list_dropped_fails_cleanly(restricted: tuple[str, str], fake_llm: FakeLLM) -> None:
    """An assistant created before the allow-list changed: its run fails with a sentence the user
    can act on, and the model is never called."""
    url, aws_endpoint = restricted
    client = OpenAI(base_url=f"{url}/v1", api_key=f"sk-{uuid.uuid4().hex}", max_retries=0, timeout=60)
    dropped = f"openai/scenario-{uuid.uuid4().hex[:12]}"
    assistant = client.beta.assistants.create(model=f"openai/allowed-{uuid.uuid4().hex[:8]}")
    _set_stored_model(aws_endpoint, assistant.id, dropped)  # as stored before the allow-list changed
    assert client.beta.assistants.retrieve(assistant.id).model == dropped
    assert client.models.list().data[-1].id != dropped  # listed only while it is available

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "invalid_prompt"
    assert run.last_error.message == (
        f"The model `{dropped}` is not available on this deployment; give the assistant or the run another model."
    )
    assert fake_llm.requests(fake_name(dropped)) == []
    assert_clean_last_error(run.last_error.message)


def test_a_provider_that_cannot_be_reached_fails_the_run_cleanly(restricted: tuple[str, str]) -> None:
    url, _ = restricted
    client = OpenAI(base_url=f"{url}/v1", api_key=f"sk-{uuid.uuid4().hex}", max_retries=0, timeout=60)
    assistant = client.beta.assistants.create(model="hosted_vllm/unreachable")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert run.last_error.message == "The model provider could not be reached; try the run again."
    assert_clean_last_error(run.last_error.message)


def _set_stored_model(aws_endpoint: str, assistant_id: str, model: str) -> None:
    table = boto3.resource(
        "dynamodb",
        endpoint_url=aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table("AssistantsTable")
    (item,) = [i for i in table.scan()["Items"] if i["SK"] == f"ASST#{assistant_id}"]
    doc = json.loads(str(item["doc"]))
    table.update_item(
        Key={"PK": item["PK"], "SK": item["SK"]},
        UpdateExpression="SET doc = :doc",
        ExpressionAttributeValues={":doc": json.dumps({**doc, "model": model})},
    )
