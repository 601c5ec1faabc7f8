"""Assistants end to end: the official SDK over HTTP against the local stack."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.harness.openapi_spec import validate_object, wire


def test_create_retrieve_update_delete(client: OpenAI) -> None:
    store = client.vector_stores.create(name="tutor notes")
    created = client.beta.assistants.create(
        model="openai/gpt-4o-mini",
        name="Math tutor",
        description="Answers math questions",
        instructions="You are a tutor.",
        tools=[
            {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}},
            {"type": "file_search"},
        ],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        metadata={"team": "edu"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert created.id.startswith("asst_") and len(created.id) == len("asst_") + 24
    assert created.object == "assistant"
    assert 1_600_000_000 < created.created_at < 10_000_000_000  # seconds, not milliseconds
    assert created.tools[0].type == "function" and created.tools[0].function.name == "add"
    assert created.tool_resources.file_search.vector_store_ids == [store.id]
    assert created.response_format.type == "json_object"
    validate_object("AssistantObject", wire(created))

    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched == created

    updated = client.beta.assistants.update(created.id, name="Algebra tutor", metadata={"team": "math"})
    assert updated.name == "Algebra tutor"
    assert updated.metadata == {"team": "math"}
    assert updated.instructions == "You are a tutor."  # untouched fields stay
    assert client.beta.assistants.retrieve(created.id).name == "Algebra tutor"

    deleted = client.beta.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "assistant.deleted", True)
    validate_object("DeleteAssistantResponse", wire(deleted))
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.assistants.retrieve(created.id)
    assert missing.value.status_code == 404
    assert missing.value.body["type"] == "invalid_request_error"
    assert created.id in missing.value.body["message"]


def test_auto_pagination_walks_every_page_once(client: OpenAI) -> None:
    ids = [client.beta.assistants.create(model="gpt-4o", name=f"a{i}").id for i in range(23)]

    ascending = [a.id for a in client.beta.assistants.list(limit=5, order="asc")]
    assert ascending == ids

    descending = [a.id for a in client.beta.assistants.list(limit=7)]  # default order is desc
    assert descending == list(reversed(ids))

    first = client.beta.assistants.list(limit=10, order="asc")
    assert first.has_more is True and first.first_id == ids[0] and first.last_id == ids[9]
    validate_object("ListAssistantsResponse", wire(first))
    last = client.beta.assistants.list(limit=10, order="asc", after=ids[19])
    assert [a.id for a in last.data] == ids[20:] and last.has_more is False
    before = client.beta.assistants.list(limit=3, order="asc", before=ids[10])
    assert [a.id for a in before.data] == ids[7:10]

    default_page = client.beta.assistants.list()
    assert len(default_page.data) == 20


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"name": "n" * 257}, "name"),
        ({"tools": [{"type": "browser"}]}, "tools[0]"),
        ({"tools": [{"type": "code_interpreter"}, {"type": "function", "function": {"name": "python"}}]}, "tools"),
        (
            {"tools": [{"type": "file_search"}, {"type": "function", "function": {"name": "file_search"}}]},
            "tools",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"extra_body": {"colour": "blue"}}, "colour"),
    ],
)
def test_invalid_create_is_a_400_in_openai_shape(client: OpenAI, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.beta.assistants.create(model="gpt-4o", **kwargs)
    body = error.value.body
    assert error.value.status_code == 400
    assert body["type"] == "invalid_request_error"
    assert body["param"].startswith(param)
    assert body["message"]
    assert client.beta.assistants.list().data == []  # nothing was written


def test_missing_model_is_named(http: httpx.Client) -> None:
    response = http.post("/v1/assistants", json={"name": "no model"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "missing_required_parameter",
    }
    validate_object("ErrorResponse", response.json())


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "order=sideways", "limit=ten"])
def test_invalid_list_parameters(http: httpx.Client, query: str) -> None:
    response = http.get(f"/v1/assistants?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == query.split("=")[0]


def test_malformed_json_and_non_object_body(http: httpx.Client) -> None:
    response = http.post("/v1/assistants", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]
    response = http.post("/v1/assistants", json=["model"])
    assert response.status_code == 400


def test_unknown_ids_are_404(client: OpenAI) -> None:
    for call in (
        lambda: client.beta.assistants.retrieve("asst_doesnotexist"),
        lambda: client.beta.assistants.update("asst_doesnotexist", name="x"),
        lambda: client.beta.assistants.delete("asst_doesnotexist"),
    ):
        with pytest.raises(openai.NotFoundError) as error:
            call()
        assert error.value.body["param"] == "assistant_id"


def test_auth_errors_and_health(stack_url: str) -> None:
    assert httpx.get(f"{stack_url}/health").status_code == 200
    response = httpx.get(f"{stack_url}/v1/assistants")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.get(f"{stack_url}/v1/assistants", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    response = httpx.get(f"{stack_url}/v1/nothing-here", headers={"Authorization": "Bearer k"})
    assert response.status_code == 404
    assert "Invalid URL" in response.json()["error"]["message"]


def test_forged_request_context_is_ignored(stack_url: str, client: OpenAI) -> None:
    """A client cannot claim a tenant by sending the header the gateway sets."""
    client.beta.assistants.create(model="gpt-4o", name="mine")
    forged = httpx.get(
        f"{stack_url}/v1/assistants",
        headers={"x-amzn-request-context": '{"authorizer": {"tenantId": "someone"}}'},
    )
    assert forged.status_code == 401


async def test_async_client(async_client: AsyncOpenAI) -> None:
    created = [await async_client.beta.assistants.create(model="gpt-4o", name=f"async-{i}") for i in range(4)]
    seen = [a.id async for a in async_client.beta.assistants.list(limit=3, order="asc")]
    assert seen == [a.id for a in created]
    updated = await async_client.beta.assistants.update(created[0].id, description="d")
    assert updated.description == "d"
    deleted = await async_client.beta.assistants.delete(created[0].id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        await async_client.beta.assistants.retrieve(created[0].id)


def test_a_function_named_file_search_is_the_users_own_without_the_tool(client: OpenAI) -> None:
    own = {"type": "function", "function": {"name": "file_search", "parameters": {"type": "object"}}}
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[own])  # type: ignore[list-item]
    assert [t.type for t in assistant.tools] == ["function"]
    with pytest.raises(openai.BadRequestError) as error:
        client.beta.assistants.update(assistant.id, tools=[own, {"type": "file_search"}])  # type: ignore[list-item]
    assert "file_search" in error.value.body["message"]
    assert client.beta.assistants.retrieve(assistant.id).tools == assistant.tools
