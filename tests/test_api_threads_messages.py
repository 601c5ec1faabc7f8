"""Threads and messages end to end, with tenant isolation between two API keys."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.harness.openapi_spec import validate_object, wire


def test_thread_with_initial_messages(client: OpenAI) -> None:
    doc = client.files.create(file=("notes.txt", b"Some notes."), purpose="assistants")
    store = client.vector_stores.create(name="thread notes")
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "Hello", "metadata": {"n": "1"}},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look at this"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "image_file", "image_file": {"file_id": "file_abc"}},
                ],
                "attachments": [{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
            },
            {"role": "assistant", "content": "Hi there"},
        ],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        metadata={"user": "u1"},
    )
    assert thread.id.startswith("thread_") and thread.object == "thread"
    assert thread.metadata == {"user": "u1"}
    # The file attached for file_search went into the thread's store.
    assert thread.tool_resources.file_search.vector_store_ids == [store.id]
    assert [f.id for f in client.vector_stores.files.list(store.id)] == [doc.id]
    validate_object("ThreadObject", wire(thread))

    messages = client.beta.threads.messages.list(thread.id, order="asc")
    validate_object("ListMessagesResponse", wire(messages))
    first, second, third = messages.data
    assert first.content[0].type == "text" and first.content[0].text.value == "Hello"
    assert first.content[0].text.annotations == []
    assert first.metadata == {"n": "1"} and first.thread_id == thread.id
    assert [p.type for p in second.content] == ["text", "image_url", "image_file"]
    assert second.content[1].image_url.url == "https://example.com/cat.png"
    assert second.content[1].image_url.detail == "low"
    assert second.content[2].image_file.file_id == "file_abc"
    assert second.attachments[0].file_id == doc.id
    assert second.attachments[0].tools[0].type == "file_search"
    assert third.role == "assistant"
    for message in messages.data:
        assert message.id.startswith("msg_") and message.object == "thread.message"
        validate_object("MessageObject", wire(message))

    assert client.beta.threads.retrieve(thread.id) == thread
    updated = client.beta.threads.update(thread.id, metadata={"user": "u2"})
    assert updated.metadata == {"user": "u2"}
    assert updated.tool_resources.file_search.vector_store_ids == [store.id]

    deleted = client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (thread.id, "thread.deleted", True)
    validate_object("DeleteThreadResponse", wire(deleted))
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(first.id, thread_id=thread.id)


def test_empty_thread_and_message_crud(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    assert client.beta.threads.messages.list(thread.id).data == []

    message = client.beta.threads.messages.create(thread.id, role="user", content="What is 2+2?")
    assert message.status == "completed" and message.run_id is None and message.assistant_id is None
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message

    updated = client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"seen": "yes"})
    assert updated.metadata == {"seen": "yes"}
    assert updated.content == message.content

    deleted = client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (message.id, "thread.message.deleted", True)
    validate_object("DeleteMessageResponse", wire(deleted))
    assert client.beta.threads.messages.list(thread.id).data == []
    with pytest.raises(openai.NotFoundError) as error:
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert error.value.body["param"] == "message_id"


def test_message_pagination_and_run_filter(client: OpenAI) -> None:
    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(12)]
    assert [m.id for m in client.beta.threads.messages.list(thread.id, limit=5, order="asc")] == ids
    assert [m.id for m in client.beta.threads.messages.list(thread.id, limit=4)] == ids[::-1]
    page = client.beta.threads.messages.list(thread.id, limit=5, order="asc", after=ids[4])
    assert [m.id for m in page.data] == ids[5:10] and page.has_more
    assert client.beta.threads.messages.list(thread.id, run_id="run_unknown").data == []


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "system", "content": "x"},
        {"role": "user", "content": []},
        {"role": "user", "content": [{"type": "audio", "audio": {}}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
        {"role": "user"},
        {"role": "user", "content": "x", "metadata": {str(i): "v" for i in range(20)}},
        {"role": "user", "content": "x", "unexpected": True},
    ],
)
def test_invalid_messages_are_rejected(client: OpenAI, http: httpx.Client, bad: dict) -> None:
    thread = client.beta.threads.create()
    response = http.post(f"/v1/threads/{thread.id}/messages", json=bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] and error["message"]
    assert client.beta.threads.messages.list(thread.id).data == []
    response = http.post("/v1/threads", json={"messages": [bad]})
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("messages[0]")


def test_message_on_unknown_thread_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.beta.threads.messages.create("thread_missing", role="user", content="hi")
    assert error.value.body["param"] == "thread_id"
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.update("thread_missing", metadata={})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.delete("thread_missing")


def test_tenants_are_isolated(client: OpenAI, other_client: OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", name="private")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "secret"}])
    message = client.beta.threads.messages.list(thread.id).data[0]

    assert other_client.beta.assistants.list().data == []
    denied = [
        lambda: other_client.beta.assistants.retrieve(assistant.id),
        lambda: other_client.beta.assistants.update(assistant.id, name="stolen"),
        lambda: other_client.beta.assistants.delete(assistant.id),
        lambda: other_client.beta.threads.retrieve(thread.id),
        lambda: other_client.beta.threads.update(thread.id, metadata={"x": "y"}),
        lambda: other_client.beta.threads.delete(thread.id),
        lambda: other_client.beta.threads.messages.list(thread.id),
        lambda: other_client.beta.threads.messages.create(thread.id, role="user", content="intrusion"),
        lambda: other_client.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
        lambda: other_client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"a": "b"}),
        lambda: other_client.beta.threads.messages.delete(message.id, thread_id=thread.id),
    ]
    for call in denied:
        with pytest.raises(openai.NotFoundError):
            call()

    assert client.beta.assistants.retrieve(assistant.id).name == "private"
    assert client.beta.threads.retrieve(thread.id).metadata == {}
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [message.id]
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id).metadata == {}


async def test_async_threads_and_messages(async_client: AsyncOpenAI) -> None:
    thread = await async_client.beta.threads.create(messages=[{"role": "user", "content": "a"}])
    await async_client.beta.threads.messages.create(thread.id, role="user", content="b")
    texts = [
        m.content[0].text.value async for m in async_client.beta.threads.messages.list(thread.id, limit=1, order="asc")
    ]
    assert texts == ["a", "b"]
    assert (await async_client.beta.threads.delete(thread.id)).deleted is True
