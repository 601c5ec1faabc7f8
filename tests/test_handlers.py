"""The Lambda handlers themselves, fed the sample API Gateway events in events/.

Each function's ``app.py`` is imported by file path (as Lambda would load it from its CodeUri) and
called with an event and a fake Lambda context, against an in-process moto DynamoDB whose table is
created from template.yaml. This is what ``sam local invoke <Function> -e events/<file>.json``
runs in a container.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import template as cfn

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
SAMPLE_KEY = "sk-sa-sample-0123456789abcdefghijklmnopqrstuv"  # the key events/*.json carry
SAMPLE_KEY_ID = hashlib.sha256(SAMPLE_KEY.encode()).hexdigest()[:16]  # rate limits count against it
TABLE = "AssistantsTable"  # create_tables names the table by its logical id


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "0f2a7c3e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2025/11/21/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_event(name: str, **replace: str) -> dict[str, Any]:
    """An event from events/, with sample ids swapped for real ones (path, pathParameters)."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    for placeholder, value in replace.items():
        event["path"] = event["path"].replace(placeholder, value)
        event["requestContext"]["path"] = event["requestContext"]["path"].replace(placeholder, value)
        for key, param in (event.get("pathParameters") or {}).items():
            if param == placeholder:
                event["pathParameters"][key] = value
    return event


SAMPLE_ASSISTANT = "asst_0SAMPLE0abcdefghijklmnop"
SAMPLE_THREAD = "thread_0SAMPLE0abcdefghijklmnop"


def body(response: dict[str, Any]) -> Any:
    assert not response.get("isBase64Encoded"), response
    return json.loads(response["body"])


def assert_openai_error(response: dict[str, Any], status: int) -> dict[str, Any]:
    assert response["statusCode"] == status, response
    error = body(response)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": cfn.REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "TABLE_NAME": TABLE,
            "POWERTOOLS_TRACE_DISABLED": "1",
            "POWERTOOLS_METRICS_NAMESPACE": "ServerlessAssistantsTest",
            "POWERTOOLS_SERVICE_NAME": "serverless-assistants",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _clear_caches() -> None:
    from assistants_core import config, repository

    config.settings.cache_clear()
    repository.default_repository.cache_clear()


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[Any]:
    """A fresh moto DynamoDB with template.yaml's table, for every test."""
    with mock_aws():
        _clear_caches()
        client = boto3.client("dynamodb", region_name=cfn.REGION)
        assert cfn.create_tables(client) == {TABLE: TABLE}
        yield client
        _clear_caches()


_modules: dict[str, ModuleType] = {}


def load_function(folder: str) -> ModuleType:
    """Import functions/<folder>/app.py under a unique module name (every function has an app.py)."""
    if folder not in _modules:
        path = ROOT / "functions" / folder / "app.py"
        name = f"_lambda_{folder}_app"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _modules[folder] = module
    return _modules[folder]


def invoke(folder: str, event: dict[str, Any]) -> dict[str, Any]:
    context = FakeLambdaContext(function_name=f"{folder}-function")
    return load_function(folder).handler(copy.deepcopy(event), context)


# ------------------------------------------------------------------ the events themselves


def test_sample_events_are_api_gateway_rest_proxy_events() -> None:
    names = sorted(p.stem for p in EVENTS.glob("*.json"))
    for expected in (
        "assistants-create",
        "assistants-list",
        "assistants-get",
        "threads-create",
        "messages-create",
        "messages-list",
        "health",
        "authorizer",
        "runs-create",
        "runs-list",
    ):
        assert expected in names
    for name in names:
        event = json.loads((EVENTS / f"{name}.json").read_text())
        if name == "authorizer":
            assert event["type"] == "TOKEN" and event["authorizationToken"] == f"Bearer {SAMPLE_KEY}"
            assert event["methodArn"].startswith("arn:aws:execute-api:")
            continue
        if name == "authorizer-upload":
            assert event["type"] == "REQUEST" and event["headers"]["Authorization"] == f"Bearer {SAMPLE_KEY}"
            assert int(event["headers"]["Content-Length"]) > 0
            continue
        if name in ("ingest", "expiry"):  # a Step Functions task's input, a scheduled event
            continue
        assert event["requestContext"]["stage"] == "prod"
        assert event["requestContext"]["path"] == "/prod" + event["path"]
        assert event["requestContext"]["resourcePath"] == event["resource"]
        assert event["requestContext"]["httpMethod"] == event["httpMethod"]
        if name == "health":
            assert "authorizer" not in event["requestContext"]
            continue
        assert event["headers"]["Authorization"] == f"Bearer {SAMPLE_KEY}"
        assert event["headers"]["OpenAI-Beta"] == "assistants=v2"
        assert event["requestContext"]["authorizer"]["tenantId"] == "tenant-sample"
        if event["httpMethod"] == "POST":
            # With the API's binary media types (*/*), API Gateway passes every body base64-encoded.
            assert event["isBase64Encoded"] is True
            raw = base64.b64decode(event["body"])
            if event["headers"].get("Content-Type", "application/json") == "application/json":
                assert isinstance(json.loads(raw), dict)


def test_every_event_route_is_a_route_of_the_template() -> None:
    routes = {
        (props["Properties"]["Path"], props["Properties"]["Method"].upper())
        for spec in cfn.functions().values()
        for props in spec.events.values()
        if props["Type"] == "Api"
    }
    for path in EVENTS.glob("*.json"):
        event = json.loads(path.read_text())
        if "resource" in event:
            assert (event["resource"], event["httpMethod"]) in routes, path.name


# ------------------------------------------------------------------ models


def test_models_list_and_get_an_id_with_a_slash(dynamodb: Any) -> None:
    created = invoke("assistants", load_event("assistants-create"))
    assert created["statusCode"] == 200, created
    listed = invoke("models", load_event("models-list"))
    assert listed["statusCode"] == 200, listed
    assert body(listed) == {
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": body(created)["created_at"], "owned_by": "openai"}
        ],
    }
    # The SDK sends openai%2Fgpt-4o-mini; API Gateway's greedy {model+} matches it encoded or not.
    expected = {"id": "openai/gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}
    assert body(invoke("models", load_event("models-get"))) == expected
    decoded = load_event("models-get", **{"openai%2Fgpt-4o-mini": "openai/gpt-4o-mini"})
    assert body(invoke("models", decoded)) == expected
    unknown = load_event("models-get", **{"openai%2Fgpt-4o-mini": "gpt-nonexistent-foo"})
    error = assert_openai_error(invoke("models", unknown), 404)
    assert error == {
        "message": "The model `gpt-nonexistent-foo` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


# ------------------------------------------------------------------ assistants


def test_health_needs_no_tenant(dynamodb: Any) -> None:
    response = invoke("assistants", load_event("health"))
    assert response["statusCode"] == 200
    assert body(response) == {"status": "ok"}


def test_assistant_create_then_get_list_update_delete(dynamodb: Any) -> None:
    created = invoke("assistants", load_event("assistants-create"))
    assert created["statusCode"] == 200, created
    assistant = body(created)
    assert assistant["id"].startswith("asst_") and assistant["id"] != SAMPLE_ASSISTANT
    assert assistant["object"] == "assistant"
    assert assistant["model"] == "gpt-4o-mini"
    assert assistant["name"] == "Math Tutor"
    assert assistant["metadata"] == {"team": "docs"}
    assert assistant["tools"][0]["function"]["name"] == "get_weather"
    assert isinstance(assistant["created_at"], int)

    fetched = invoke("assistants", load_event("assistants-get", **{SAMPLE_ASSISTANT: assistant["id"]}))
    assert fetched["statusCode"] == 200, fetched
    assert body(fetched) == assistant

    listed = invoke("assistants", load_event("assistants-list"))
    assert listed["statusCode"] == 200
    page = body(listed)
    assert page["object"] == "list"
    assert [a["id"] for a in page["data"]] == [assistant["id"]]
    assert page["first_id"] == page["last_id"] == assistant["id"]
    assert page["has_more"] is False

    updated = invoke("assistants", load_event("assistants-update", **{SAMPLE_ASSISTANT: assistant["id"]}))
    assert updated["statusCode"] == 200, updated
    assert body(updated)["name"] == "Algebra Tutor"
    assert body(updated)["metadata"] == {"team": "math"}

    deleted = invoke("assistants", load_event("assistants-delete", **{SAMPLE_ASSISTANT: assistant["id"]}))
    assert deleted["statusCode"] == 200
    assert body(deleted) == {"id": assistant["id"], "object": "assistant.deleted", "deleted": True}

    gone = invoke("assistants", load_event("assistants-get", **{SAMPLE_ASSISTANT: assistant["id"]}))
    error = assert_openai_error(gone, 404)
    assert assistant["id"] in error["message"]


def test_an_idempotency_key_works_behind_mangum(dynamodb: Any) -> None:
    """On AWS the tenant comes from the Lambda event (mangum), not from a header: a retry with the
    key still gets the first answer."""
    event = load_event("assistants-create")
    event["headers"]["Idempotency-Key"] = "stainless-python-retry-handler-test"
    event["multiValueHeaders"]["Idempotency-Key"] = ["stainless-python-retry-handler-test"]
    first, again = invoke("assistants", event), invoke("assistants", event)
    assert first["statusCode"] == again["statusCode"] == 200, again
    assert again["body"] == first["body"]
    assert "idempotent-replayed" not in first["headers"]
    assert again["headers"]["idempotent-replayed"] == "true"
    assert [a["id"] for a in body(invoke("assistants", load_event("assistants-list")))["data"]] == [body(first)["id"]]


def test_unknown_assistant_is_a_404_in_openai_shape(dynamodb: Any) -> None:
    error = assert_openai_error(invoke("assistants", load_event("assistants-get")), 404)
    assert error["type"] == "invalid_request_error"
    assert SAMPLE_ASSISTANT in error["message"]


def test_event_without_authorizer_context_is_a_401(dynamodb: Any) -> None:
    event = load_event("assistants-create")
    del event["requestContext"]["authorizer"]
    error = assert_openai_error(invoke("assistants", event), 401)
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"]
    # nothing was written
    assert dynamodb.scan(TableName=TABLE)["Count"] == 0


def test_tenants_are_isolated(dynamodb: Any) -> None:
    assistant = body(invoke("assistants", load_event("assistants-create")))
    other = load_event("assistants-get", **{SAMPLE_ASSISTANT: assistant["id"]})
    other["requestContext"]["authorizer"]["tenantId"] = "another-tenant"
    assert_openai_error(invoke("assistants", other), 404)
    listed = load_event("assistants-list")
    listed["requestContext"]["authorizer"]["tenantId"] = "another-tenant"
    assert body(invoke("assistants", listed))["data"] == []


def test_invalid_body_is_a_400_not_a_422(dynamodb: Any) -> None:
    event = load_event("assistants-create")
    event["body"] = base64.b64encode(json.dumps({"name": "no model"}).encode()).decode()
    error = assert_openai_error(invoke("assistants", event), 400)
    assert error["param"] == "model"
    assert error["code"] == "missing_required_parameter"


# ------------------------------------------------------------------ threads and messages


def test_thread_and_messages(dynamodb: Any) -> None:
    created = invoke("threads", load_event("threads-create"))
    assert created["statusCode"] == 200, created
    thread = body(created)
    assert thread["id"].startswith("thread_") and thread["object"] == "thread"
    assert thread["metadata"] == {"user": "u_123"}

    fetched = invoke("threads", load_event("threads-get", **{SAMPLE_THREAD: thread["id"]}))
    assert fetched["statusCode"] == 200 and body(fetched) == thread

    posted = invoke("messages", load_event("messages-create", **{SAMPLE_THREAD: thread["id"]}))
    assert posted["statusCode"] == 200, posted
    message = body(posted)
    assert message["id"].startswith("msg_") and message["object"] == "thread.message"
    assert message["thread_id"] == thread["id"]
    assert message["role"] == "user"
    assert message["content"] == [{"type": "text", "text": {"value": "What is x if 2x = 10?", "annotations": []}}]

    listed = invoke("messages", load_event("messages-list", **{SAMPLE_THREAD: thread["id"]}))
    assert listed["statusCode"] == 200
    page = body(listed)
    assert page["object"] == "list"
    # the thread was created with one message; the list is in ascending order (the event asks so)
    texts = [m["content"][0]["text"]["value"] for m in page["data"]]
    assert texts == ["I need to solve 3x + 11 = 14. Can you help me?", "What is x if 2x = 10?"]
    assert page["last_id"] == message["id"]


def test_message_in_unknown_thread_is_a_404(dynamodb: Any) -> None:
    error = assert_openai_error(invoke("messages", load_event("messages-create")), 404)
    assert SAMPLE_THREAD in error["message"]


# ------------------------------------------------------------------ authorizer


def _authorizer_event(token: str | None) -> dict[str, Any]:
    event = json.loads((EVENTS / "authorizer.json").read_text())
    if token is None:
        event.pop("authorizationToken")
    else:
        event["authorizationToken"] = token
    return event


def test_authorizer_allows_a_stored_key_with_its_tenant(dynamodb: Any) -> None:
    from assistants_core.api_keys import store_key
    from assistants_core.repository import default_repository

    store_key(default_repository(), SAMPLE_KEY, "tenant-sample", name="sample")
    result = invoke("authorizer", _authorizer_event(f"Bearer {SAMPLE_KEY}"))
    assert result["principalId"] == "tenant-sample"
    assert result["context"] == {"tenantId": "tenant-sample", "keyId": SAMPLE_KEY_ID}
    (statement,) = result["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "execute-api:Invoke"
    # every route of the stage, so that API Gateway can cache the decision per key
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*/*"


@pytest.mark.parametrize(
    "token",
    [f"Bearer {SAMPLE_KEY}-unknown", "Bearer ", SAMPLE_KEY, f"Basic {SAMPLE_KEY}", "", None],
    ids=["unknown-key", "empty-bearer", "no-scheme", "basic-scheme", "empty", "missing"],
)
def test_authorizer_rejects_unknown_or_missing_keys(dynamodb: Any, token: str | None) -> None:
    from assistants_core.api_keys import store_key
    from assistants_core.repository import default_repository

    store_key(default_repository(), SAMPLE_KEY, "tenant-sample")
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke("authorizer", _authorizer_event(token))


def test_authorizer_rejects_a_revoked_key(dynamodb: Any) -> None:
    from assistants_core.api_keys import revoke_key, store_key
    from assistants_core.repository import default_repository

    record = store_key(default_repository(), SAMPLE_KEY, "tenant-sample")
    assert invoke("authorizer", _authorizer_event(f"Bearer {SAMPLE_KEY}"))["context"]["tenantId"] == "tenant-sample"
    revoke_key(default_repository(), record.key_hash[:16])
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke("authorizer", _authorizer_event(f"Bearer {SAMPLE_KEY}"))


# ------------------------------------------------------------------ files, vector stores, ingestion, expiry


@pytest.fixture
def storage(dynamodb: Any) -> Iterator[Any]:
    """The files bucket and the vector bucket and index, in the same moto, as template.yaml names them."""
    os.environ.update({"FILES_BUCKET": "files-sample", "VECTOR_BUCKET": "vectors-sample", "VECTOR_INDEX": "chunks"})
    _clear_caches()
    from assistants_core.blobs import default_blob_store

    default_blob_store.cache_clear()
    s3 = boto3.client("s3", region_name=cfn.REGION)
    s3.create_bucket(Bucket="files-sample")
    yield s3
    default_blob_store.cache_clear()


def test_file_upload_and_content_through_api_gateway_events(storage: Any) -> None:
    created = invoke("files", load_event("files-create"))
    assert created["statusCode"] == 200, created
    file = body(created)
    assert file["filename"] == "handbook.md" and file["purpose"] == "assistants" and file["bytes"] == 51
    assert file["id"].startswith("file-")
    content = invoke("files", load_event("files-content", **{"file-0SAMPLE0abcdefghijklmnop": file["id"]}))
    assert content["statusCode"] == 200
    # Bytes go back base64-encoded, which API Gateway decodes for a binary media type.
    assert content["isBase64Encoded"] is True
    assert base64.b64decode(content["body"]) == b"# Handbook\n\nEmployees get 25 days of leave a year.\n"
    stored = storage.list_objects_v2(Bucket="files-sample")["Contents"]
    assert [o["Key"] for o in stored] == [f"t/tenant-sample/files/{file['id']}"]


def test_a_vector_store_through_an_api_gateway_event(storage: Any) -> None:
    created = invoke("vector_stores", load_event("vector-stores-create"))
    assert created["statusCode"] == 200, created
    store = body(created)
    assert store["name"] == "Handbook" and store["metadata"] == {"team": "hr"}
    assert store["status"] == "completed" and store["file_counts"]["total"] == 0


def test_upload_authorizer_denies_a_body_too_large_for_lambda(dynamodb: Any) -> None:
    from assistants_core.api_keys import store_key
    from assistants_core.repository import default_repository
    from assistants_core.request_size import MAX_REQUEST_BYTES

    store_key(default_repository(), SAMPLE_KEY, "tenant-sample", name="sample")
    event = json.loads((EVENTS / "authorizer-upload.json").read_text())
    allowed = invoke("authorizer", event)
    assert allowed["context"] == {"tenantId": "tenant-sample", "keyId": SAMPLE_KEY_ID}
    (statement,) = allowed["policyDocument"]["Statement"]
    assert (statement["Effect"], statement["Resource"]) == ("Allow", event["methodArn"])  # this request only
    event["headers"]["Content-Length"] = str(MAX_REQUEST_BYTES + 1)
    (statement,) = invoke("authorizer", event)["policyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"  # API Gateway's ACCESS_DENIED answers 413 (template.yaml)
    event["headers"]["Authorization"] = "Bearer sk-unknown"
    with pytest.raises(Exception, match="^Unauthorized$"):
        invoke("authorizer", event)


def test_ingest_and_expiry_handlers_take_their_events(storage: Any) -> None:
    # The sample file is in no store: ingestion has nothing to do, and says so.
    assert invoke("ingest", json.loads((EVENTS / "ingest.json").read_text()))["status"] == "skipped"
    expected = {"file": 0, "vector_store": 0, "ingestion": 0}
    assert invoke("expiry", json.loads((EVENTS / "expiry.json").read_text())) == expected
