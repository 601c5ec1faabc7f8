"""``Idempotency-Key`` end to end: a retried POST gets the first answer and creates nothing twice.

The official SDKs make a key for each request and reuse it on their retries, but send it only
when told the header's name (:class:`KeyedOpenAI`). A lost answer is played by a transport that
lets the server do the work, then drops the connection (:class:`LoseAnswers`), so the SDK
really retries. Records are read and edited in the stack's table to play a request still in
progress.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import DefaultHttpxClient, OpenAI

from local.stack import tenant_for_open_key
from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.harness.scenario import WEATHER_TOOL, assert_valid_stream, script, wait_for
from tests.harness.sse import parse_sse
from tests.test_handlers import aws_env, dynamodb  # noqa: F401 - fixtures, used by name
from tests.test_node_sdk_code_interpreter import NODE_MODULES, ROOT, node_sdk

TABLE = "AssistantsTable"
REPLAYED = "idempotent-replayed"


class KeyedOpenAI(OpenAI):
    """The official client, sending the key it makes for every POST (and keeps for its retries)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._idempotency_header = "Idempotency-Key"


class LoseAnswers(httpx.BaseTransport):
    """Real HTTP, except that the first ``lose`` POSTs lose their answer: the server has done the
    work (a JSON answer is read whole, a stream up to its first bytes), then the connection
    "resets", so the SDK sees a network error and retries."""

    def __init__(self, lose: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.lose = lose
        self.posts: list[tuple[str, str | None]] = []  # (path, Idempotency-Key) of each POST sent

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "POST":
            return response
        self.posts.append((request.url.path, request.headers.get("idempotency-key")))
        if self.lose <= 0:
            return response
        self.lose -= 1
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            next(iter(response.stream))  # type: ignore[call-overload]
        else:
            response.read()
        response.close()
        raise httpx.ReadError("connection reset (the test lost the answer)", request=request)


def keyed_client(stack_url: str, api_key: str, transport: LoseAnswers | None = None) -> KeyedOpenAI:
    http_client = DefaultHttpxClient(transport=transport, timeout=60) if transport else None
    return KeyedOpenAI(base_url=f"{stack_url}/v1", api_key=api_key, max_retries=2, timeout=60, http_client=http_client)


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def records(aws: Callable[[str], Any], api_key: str) -> list[dict[str, Any]]:
    """The tenant's idempotency records, as DynamoDB holds them."""
    prefix = f"T#{tenant_for_open_key(api_key)}#IDEM#"
    pages = (
        aws("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=TABLE,
            FilterExpression="begins_with(PK, :p)",
            ExpressionAttributeValues={":p": {"S": prefix}},
            ConsistentRead=True,
        )
    )
    return [item for page in pages for item in page["Items"]]


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


# ------------------------------------------------------------------ raw HTTP


@pytest.mark.parametrize(
    ("path", "body", "listing"),
    [
        ("/v1/assistants", {"model": "gpt-4o", "name": "once"}, "/v1/assistants"),
        ("/v1/vector_stores", {"name": "once"}, "/v1/vector_stores"),
        ("/v1/threads/{thread}/messages", {"role": "user", "content": "once"}, "/v1/threads/{thread}/messages"),
    ],
)
def test_same_key_and_body_get_the_first_answer_and_make_one_object(
    http: httpx.Client, client: OpenAI, path: str, body: dict[str, Any], listing: str
) -> None:
    thread = client.beta.threads.create()
    path, listing = path.format(thread=thread.id), listing.format(thread=thread.id)
    key = new_key()

    first = http.post(path, json=body, headers=keyed(key))
    again = http.post(path, json=body, headers=keyed(key))

    assert first.status_code == again.status_code == 200, first.text
    assert again.content == first.content  # byte for byte, its id and created_at included
    assert REPLAYED not in first.headers and again.headers[REPLAYED] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    listed = http.get(listing).json()["data"]
    assert [o["id"] for o in listed] == [first.json()["id"]]


def test_an_answer_too_large_for_its_record_is_kept_in_s3_and_replayed(http: httpx.Client) -> None:
    """256,000 characters of instructions that do not compress: over the record's 350 KB."""
    rng = random.Random(7)
    instructions = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(256_000))
    body = {"model": "gpt-4o", "name": "large", "instructions": instructions}
    key = new_key()

    first = http.post("/v1/assistants", json=body, headers=keyed(key), timeout=120)
    again = http.post("/v1/assistants", json=body, headers=keyed(key), timeout=120)

    assert first.status_code == again.status_code == 200, again.text[:500]
    assert again.content == first.content and again.headers[REPLAYED] == "true"
    assert again.json()["instructions"] == instructions
    assert [a["id"] for a in http.get("/v1/assistants").json()["data"]] == [first.json()["id"]]


def test_a_thread_created_twice_with_one_key_is_one_thread(http: httpx.Client, client: OpenAI) -> None:
    key = new_key()
    body = {"messages": [{"role": "user", "content": "hello"}]}
    first = http.post("/v1/threads", json=body, headers=keyed(key)).json()
    again = http.post("/v1/threads", json=body, headers=keyed(key)).json()
    assert again == first
    assert len(client.beta.threads.messages.list(first["id"]).data) == 1


def test_same_key_with_another_body_is_a_422_and_makes_nothing(
    http: httpx.Client, stack_url: str, api_key: str
) -> None:
    key = new_key()
    first = http.post("/v1/assistants", json={"model": "gpt-4o", "name": "first"}, headers=keyed(key))
    other = http.post("/v1/assistants", json={"model": "gpt-4o", "name": "second"}, headers=keyed(key))
    assert first.status_code == 200
    assert other.status_code == 422, other.text
    error = other.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "idempotency_key_reused"
    assert error["param"] is None and key in error["message"]
    # Another query is another request too (include[] on a run), and the SDK does not retry a 422.
    transport = LoseAnswers(lose=0)
    sdk = keyed_client(stack_url, api_key, transport)
    with pytest.raises(openai.UnprocessableEntityError):
        sdk.beta.assistants.create(model="gpt-4o", name="third", extra_headers=keyed(key))
    assert len(transport.posts) == 1
    assert [a["name"] for a in http.get("/v1/assistants").json()["data"]] == ["first"]


def test_keys_are_per_tenant_and_per_path(http: httpx.Client, stack_url: str) -> None:
    key = new_key()
    other_tenant = httpx.Client(
        base_url=stack_url, headers={"Authorization": f"Bearer sk-other-{uuid.uuid4().hex}"}, timeout=30
    )
    with other_tenant:
        mine = http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed(key))
        theirs = other_tenant.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed(key))
        assert mine.status_code == theirs.status_code == 200
        assert REPLAYED not in theirs.headers and theirs.json()["id"] != mine.json()["id"]
        assert len(other_tenant.get("/v1/assistants").json()["data"]) == 1
    store = http.post("/v1/vector_stores", json={}, headers=keyed(key))
    assert store.status_code == 200 and REPLAYED not in store.headers


def test_requests_without_the_key_are_untouched(http: httpx.Client, aws: Callable[[str], Any], api_key: str) -> None:
    for _ in range(2):
        assert http.post("/v1/assistants", json={"model": "gpt-4o"}).status_code == 200
    assert len(http.get("/v1/assistants").json()["data"]) == 2
    # A key on another method than POST is not a POST's: nothing is kept for it.
    assistant = http.get("/v1/assistants").json()["data"][0]["id"]
    assert http.get(f"/v1/assistants/{assistant}", headers=keyed(new_key())).status_code == 200
    assert http.delete(f"/v1/assistants/{assistant}", headers=keyed(new_key())).json()["deleted"] is True
    assert records(aws, api_key) == []


def test_a_key_must_be_at_most_255_characters(http: httpx.Client) -> None:
    response = http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed("k" * 256))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert http.get("/v1/assistants").json()["data"] == []
    assert http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed("k" * 255)).status_code == 200


def test_a_client_error_is_kept_but_not_what_the_sdk_retries(http: httpx.Client) -> None:
    key = new_key()
    missing = http.post(
        "/v1/threads/thread_missing/messages", json={"role": "user", "content": "x"}, headers=keyed(key)
    )
    again = http.post("/v1/threads/thread_missing/messages", json={"role": "user", "content": "x"}, headers=keyed(key))
    assert missing.status_code == again.status_code == 404
    assert again.content == missing.content and again.headers[REPLAYED] == "true"


def test_records_expire_after_a_day_and_hold_a_hash_of_the_request(
    http: httpx.Client, aws: Callable[[str], Any], api_key: str
) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    http.post("/v1/assistants", json={"model": "gpt-4o", "instructions": secret}, headers=keyed(new_key()))
    (record,) = records(aws, api_key)
    assert record["SK"]["S"] == "IDEM" and record["status"]["S"] == "COMPLETED"
    assert abs(int(record["ttl"]["N"]) - (time.time() + 86400)) < 120
    assert len(record["request_hash"]["S"]) == 64
    assert "secret-" not in record["request_hash"]["S"] and "secret-" not in record["PK"]["S"]


def test_a_retry_while_the_first_is_in_progress_is_a_409(
    http: httpx.Client, aws: Callable[[str], Any], api_key: str
) -> None:
    key = new_key()
    first = http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed(key))
    (record,) = records(aws, api_key)
    in_progress = {"PK": record["PK"], "SK": record["SK"]}

    def set_in_progress(expiry_ms: float) -> None:
        aws("dynamodb").update_item(
            TableName=TABLE,
            Key=in_progress,
            UpdateExpression="SET #s = :p, in_progress_expiry = :e REMOVE #r",
            ExpressionAttributeNames={"#s": "status", "#r": "response"},
            ExpressionAttributeValues={":p": {"S": "INPROGRESS"}, ":e": {"N": str(int(expiry_ms))}},
        )

    set_in_progress(time.time() * 1000 + 60_000)  # the first request is still running
    busy = http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed(key))
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "idempotency_key_in_use" and busy.headers["retry-after"] == "1"

    set_in_progress(time.time() * 1000 - 1_000)  # it died without an answer: a retry runs again
    retried = http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed(key))
    assert retried.status_code == 200 and REPLAYED not in retried.headers
    assert retried.json()["id"] != first.json()["id"]
    assert http.post("/v1/assistants", json={"model": "gpt-4o"}, headers=keyed(key)).content == retried.content


def test_concurrent_duplicates_make_one_object(http: httpx.Client) -> None:
    thread = http.post("/v1/threads", json={}).json()["id"]
    key = new_key()

    def post(_: int) -> httpx.Response:
        body = {"role": "user", "content": "only once"}
        return http.post(f"/v1/threads/{thread}/messages", json=body, headers=keyed(key))

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(post, range(6)))
    ok = [a for a in answers if a.status_code == 200]
    assert ok and all(a.status_code == 409 for a in answers if a.status_code != 200), [a.text for a in answers]
    assert len({a.content for a in ok}) == 1
    assert len(http.get(f"/v1/threads/{thread}/messages").json()["data"]) == 1


# ------------------------------------------------------------------ the SDK, with lost answers


def test_a_lost_answer_does_not_duplicate_a_message(stack_url: str, api_key: str, client: OpenAI) -> None:
    transport = LoseAnswers(lose=1)
    sdk = keyed_client(stack_url, api_key, transport)
    thread = client.beta.threads.create()

    message = sdk.beta.threads.messages.create(thread.id, role="user", content="say it once")

    assert [m.id for m in client.beta.threads.messages.list(thread.id).data] == [message.id]
    (first, retry) = transport.posts
    assert first == retry and first[1] is not None and first[1].startswith("stainless-python-retry-")


def test_the_node_sdk_resends_its_key_and_gets_the_first_answer(stack_url: str, api_key: str, client: OpenAI) -> None:
    node = node_sdk()
    thread = client.beta.threads.create()
    env = {**os.environ, "BASE_URL": f"{stack_url}/v1", "API_KEY": api_key, "THREAD_ID": thread.id}
    env["NODE_MODULES_DIR"] = str(NODE_MODULES)
    script = ROOT / "tests" / "node" / "idempotent_retry.mjs"
    done = subprocess.run([node, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    assert [m.id for m in client.beta.threads.messages.list(thread.id).data] == [result["message"]]
    first, retry = result["keys"]
    assert first == retry and first.startswith("stainless-node-retry-")


def test_a_lost_answer_does_not_duplicate_a_file(stack_url: str, api_key: str, client: OpenAI) -> None:
    transport = LoseAnswers(lose=1)
    sdk = keyed_client(stack_url, api_key, transport)
    uploaded = sdk.files.create(file=("notes.txt", b"uploaded once\n"), purpose="assistants")
    assert len(transport.posts) == 2  # multipart: each attempt has its own boundary, still the same request
    assert [f.id for f in client.files.list().data] == [uploaded.id]


def test_a_lost_answer_does_not_start_a_second_run(
    stack_url: str, api_key: str, client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    script(fake_llm, model, text("One run only."))
    sdk = keyed_client(stack_url, api_key, LoseAnswers(lose=1))
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])

    run = sdk.beta.threads.runs.create(thread.id, assistant_id=assistant.id)

    assert run.status == "queued"
    wait_for(client, thread.id, run.id, {"completed"})
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]
    assert len(client.beta.threads.messages.list(thread.id).data) == 2


def test_a_lost_stream_is_streamed_again_from_the_same_run(
    stack_url: str, api_key: str, client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    answer = "Streamed from one run, even when retried."
    script(fake_llm, model, text(answer))
    transport = LoseAnswers(lose=1)
    sdk = keyed_client(stack_url, api_key, transport)
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])

    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        assert "".join(stream.text_deltas) == answer
        run = stream.get_final_run()

    assert len(transport.posts) == 2 and run.status == "completed"
    assert [r.id for r in client.beta.threads.runs.list(thread.id).data] == [run.id]
    texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread.id).data]  # type: ignore[union-attr]
    assert texts == [answer, "hi"]


def test_a_retried_create_and_run_stream_replays_the_whole_stream(
    http: httpx.Client, client: OpenAI, fake_llm: FakeLLM, model: str, aws: Callable[[str], Any], api_key: str
) -> None:
    script(fake_llm, model, text("Only one thread and one run."))
    assistant = client.beta.assistants.create(model=model)
    body = {"assistant_id": assistant.id, "stream": True, "thread": {"messages": [{"role": "user", "content": "hi"}]}}
    key = new_key()

    def streamed() -> tuple[httpx.Response, str]:
        with http.stream("POST", "/v1/threads/runs", json=body, headers=keyed(key), timeout=60) as response:
            return response, response.read().decode()

    (first, first_text), (again, again_text) = streamed(), streamed()
    assert REPLAYED not in first.headers and again.headers[REPLAYED] == "true"
    assert again.headers["content-type"].startswith("text/event-stream")
    assert again_text == first_text  # the same events, from the same log
    events = parse_sse(again_text)
    assert_valid_stream(events)
    thread_id, run_id = events.data("thread.created")[0]["id"], events.data("thread.run.created")[0]["id"]
    assert [r.id for r in client.beta.threads.runs.list(thread_id).data] == [run_id]
    # What is kept is where the stream comes from, not the stream: the first was never held back.
    (record,) = records(aws, api_key)
    kept = json.loads(record["response"]["S"])
    assert kept == {
        "status": 200,
        "stream": {"thread_id": thread_id, "run_id": run_id, "after_seq": 0, "search_content": False},
    }


def test_a_retried_submit_gets_the_first_answer_not_a_400(
    http: httpx.Client, client: OpenAI, fake_llm: FakeLLM, model: str
) -> None:
    script(
        fake_llm,
        model,
        tool_calls([("call_1", "get_weather", {"city": "Paris"})]),
        text("Sunny in Paris."),
        tool_calls([("call_2", "get_weather", {"city": "Rome"})]),
        text("Rainy in Rome."),
    )
    assistant = client.beta.assistants.create(model=model, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    wait_for(client, thread.id, run.id, {"requires_action"})
    path = f"/v1/threads/{thread.id}/runs/{run.id}/submit_tool_outputs"
    body = {"tool_outputs": [{"tool_call_id": "call_1", "output": "sunny"}]}
    key = new_key()

    first = http.post(path, json=body, headers=keyed(key))
    again = http.post(path, json=body, headers=keyed(key))
    assert first.status_code == again.status_code == 200, again.text
    assert again.content == first.content and first.json()["status"] == "queued"
    wait_for(client, thread.id, run.id, {"completed"})

    # Streamed: a retry streams the same events after the same point, and submits nothing.
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    wait_for(client, thread.id, run.id, {"requires_action"})
    path = f"/v1/threads/{thread.id}/runs/{run.id}/submit_tool_outputs"
    body = {"tool_outputs": [{"tool_call_id": "call_2", "output": "rainy"}], "stream": True}
    key = new_key()
    streams = []
    for _ in range(2):
        with http.stream("POST", path, json=body, headers=keyed(key), timeout=60) as response:
            assert response.status_code == 200
            streams.append(parse_sse(response.read().decode()))
    assert streams[1].raw == streams[0].raw
    assert "thread.run.created" not in streams[0].names and streams[0].names[-2] == "thread.run.completed"
    messages = client.beta.threads.messages.list(thread.id).data
    assert [m.content[0].text.value for m in messages][:2] == ["Rainy in Rome.", "Sunny in Paris."]  # type: ignore[union-attr]


def test_answers_the_sdk_retries_are_not_kept() -> None:
    from assistants_core.api.idempotency import _kept_answer

    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    for status in (408, 409, 429, 500, 502, 503, 504):
        assert _kept_answer({**start, "status": status}, b"{}", "tenant") is None, status
    kept = _kept_answer(start, json.dumps({"id": "asst_1"}).encode(), "tenant")
    assert kept is not None and kept["status"] == 200 and kept["headers"] == [["content-type", "application/json"]]
    assert _kept_answer({**start, "status": 400}, b"{}", "tenant") is not None


# ------------------------------------------------------------------ the middleware alone, on moto


def _counting_app() -> tuple[Callable[..., Any], list[int]]:
    """An ASGI app that answers how many times it ran (what a duplicate would change)."""
    runs: list[int] = []

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await receive()
        runs.append(1)
        body = json.dumps({"run": len(runs)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app, runs


def _keyed_scope(key: str) -> dict[str, Any]:
    context = json.dumps({"authorizer": {"tenantId": "tenant-unit"}}).encode()
    headers = [(b"idempotency-key", key.encode()), (b"x-amzn-request-context", context)]
    return {"type": "http", "method": "POST", "path": "/v1/things", "query_string": b"", "headers": headers}


@pytest.mark.usefixtures("dynamodb")
def test_an_answer_kept_stays_kept_when_the_client_has_gone() -> None:
    import anyio

    from assistants_core.api.idempotency import IdempotencyMiddleware
    from assistants_core.repository import idempotency as records_module

    records_module._base_layer.cache_clear()
    records_module.idempotency_config.cache_clear()
    app, runs = _counting_app()
    middleware = IdempotencyMiddleware(app)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def gone(message: dict[str, Any]) -> None:
        raise OSError("the client has gone")

    sent: list[dict[str, Any]] = []

    async def collect(message: dict[str, Any]) -> None:
        sent.append(message)

    async def twice() -> None:
        with pytest.raises(OSError):
            await middleware(_keyed_scope("gone-once"), receive, gone)
        await middleware(_keyed_scope("gone-once"), receive, collect)

    anyio.run(twice)
    records_module._base_layer.cache_clear()
    assert len(runs) == 1
    assert sent[1]["body"] == b'{"run": 1}'
    assert (b"idempotent-replayed", b"true") in sent[0]["headers"]
