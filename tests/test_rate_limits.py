"""Rate limits per API key, end to end through the SDK against a local stack that has them on
(2 requests per second with a burst of 10, 2 runs in progress): OpenAI's 429 and headers,
keys that do not affect each other, the SDK's own retry, and run slots given back on every end
of a run."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import boto3
import httpx
import openai
import pytest
from openai import OpenAI

from local.lambda_runtime import free_port
from tests.conftest import stack_in_background
from tests.harness.fake_llm import FakeLLM, server_error, text, tool_calls
from tests.harness.scenario import TERMINAL, fake_name, wait_for

RATE, BURST, RUNS = 2, 10, 2
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture(scope="session", autouse=True)
def _limited_stack(
    request: pytest.FixtureRequest, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Future[tuple[Any, str]], int] | None]:
    """A second local stack with the limits on, started in the background (autouse, so its
    start-up overlaps the shared stack's)."""
    if not any("limited" in item.fixturenames for item in request.session.items):
        yield None
        return
    aws_port = free_port()
    parameters = f"RateLimitRequestsPerSecond={RATE},RateLimitBurst={BURST},RateLimitConcurrentRuns={RUNS}"
    env = {"LOCAL_PARAMETERS": parameters, "LOCAL_AWS_PORT": str(aws_port)}
    with stack_in_background(fake_llm, tmp_path_factory, "limited-stack", env) as future:
        yield future, aws_port


@pytest.fixture
def limited(_limited_stack: tuple[Future[tuple[Any, str]], int] | None) -> Callable[..., OpenAI]:
    """A client of the limited stack for a new key (each test's keys are its own)."""
    assert _limited_stack is not None
    future, _ = _limited_stack
    _, url = future.result(timeout=180)

    def make(api_key: str | None = None, max_retries: int = 0) -> OpenAI:
        key = api_key or f"sk-limited-{uuid.uuid4().hex}"
        return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=max_retries, timeout=60)

    return make


def exhaust(client: OpenAI) -> openai.RateLimitError:
    """List assistants until the key's bucket is empty; the 429."""
    for _ in range(BURST + 20):
        try:
            client.beta.assistants.list()
        except openai.RateLimitError as error:
            return error
    raise AssertionError("never rate limited")


# ------------------------------------------------------------------ requests per second


def test_requests_over_the_limit_get_openais_429(limited: Callable[..., OpenAI]) -> None:
    client = limited()
    first = client.beta.assistants.with_raw_response.list()
    assert first.headers["x-ratelimit-limit-requests"] == str(BURST)
    assert first.headers["x-ratelimit-remaining-requests"] == str(BURST - 1)
    assert first.headers["x-ratelimit-reset-requests"] == "500ms"  # one token, at 2 per second

    started = time.monotonic()
    allowed = 1
    refused = None
    while refused is None and allowed < BURST + 20:
        try:
            client.beta.assistants.list()
            allowed += 1
        except openai.RateLimitError as error:
            refused = error
    assert refused is not None
    # the burst, plus what refilled meanwhile
    assert BURST <= allowed <= BURST + RATE * (time.monotonic() - started) + 1
    assert refused.status_code == 429
    body = refused.body
    assert isinstance(body, dict)
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded" and body["param"] is None
    assert re.fullmatch(
        r"Rate limit reached for API key [0-9a-f]{16} on requests per second \(RPS\): Limit 2, Burst 10, "
        r"Requested 1\. Please try again in \d+ms\.",
        body["message"],
    ), body["message"]
    headers = refused.response.headers
    assert headers["x-ratelimit-limit-requests"] == str(BURST)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(r"\d+(\.\d+)?s|\d+ms", headers["x-ratelimit-reset-requests"])
    wait_ms = int(headers["retry-after-ms"])
    assert 0 < wait_ms <= 500 and headers["retry-after"] == "1"

    # another key is not affected
    other = limited().beta.assistants.with_raw_response.list()
    assert other.headers["x-ratelimit-remaining-requests"] == str(BURST - 1)

    time.sleep(wait_ms / 1000 + 0.05)
    again = client.beta.assistants.with_raw_response.list()
    assert again.headers["x-ratelimit-remaining-requests"] == "0"


def test_the_sdk_waits_for_retry_after_and_succeeds(limited: Callable[..., OpenAI]) -> None:
    key = f"sk-limited-{uuid.uuid4().hex}"
    seen: list[tuple[float, int]] = []  # (when, status) of each response the SDK got

    def record(response: httpx.Response) -> None:
        seen.append((time.monotonic(), response.status_code))
        if response.status_code == 429:
            seen.append((float(response.headers["retry-after-ms"]) / 1000, -1))

    retrying = limited(key, max_retries=2).with_options(
        http_client=httpx.Client(event_hooks={"response": [record]}, timeout=60)
    )
    for _ in range(3):  # a token may come back between the 429 and the SDK's request: then again
        exhaust(limited(key))
        seen.clear()
        response = retrying.beta.assistants.with_raw_response.list()
        assert response.http_response.status_code == 200
        if response.retries_taken:
            break
    assert response.retries_taken >= 1
    (refused_at, status), (wait, _), (next_at, _) = seen[:3]
    assert status == 429
    assert next_at - refused_at >= wait - 0.01  # it waited what retry-after-ms said, and that was enough


def test_streamed_responses_carry_the_headers(limited: Callable[..., OpenAI], fake_llm: FakeLLM) -> None:
    client = limited(max_retries=5)
    model = f"openai/scenario-{uuid.uuid4().hex[:12]}"
    fake_llm.script(fake_name(model), [text("Hello.")])
    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    with httpx.stream(
        "POST",
        f"{client.base_url}threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
        headers={"Authorization": f"Bearer {client.api_key}", "OpenAI-Beta": "assistants=v2"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-limit-requests"] == str(BURST)
        assert int(response.headers["x-ratelimit-remaining-requests"]) < BURST
        assert "event: thread.run.completed" in "".join(response.iter_text())


def test_health_is_not_limited(limited: Callable[..., OpenAI]) -> None:
    url = str(limited().base_url).removesuffix("/v1/")
    for _ in range(BURST + 5):
        response = httpx.get(f"{url}/health", timeout=10)
        assert response.status_code == 200 and "x-ratelimit-limit-requests" not in response.headers


# ------------------------------------------------------------------ runs in progress


class Key:
    """One key's client on the limited stack: setup calls wait out the request limit (the SDK
    honours retry-after), ``strict`` ones do not retry."""

    def __init__(self, limited: Callable[..., OpenAI], fake: FakeLLM) -> None:
        self.api_key = f"sk-limited-{uuid.uuid4().hex}"
        self.client = limited(self.api_key, max_retries=10)
        self.strict = limited(self.api_key)
        self.fake = fake
        self.model = f"openai/scenario-{uuid.uuid4().hex[:12]}"
        self.assistant = self.client.beta.assistants.create(model=self.model, tools=[WEATHER_TOOL])

    def thread(self) -> str:
        return self.client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}]).id

    def run(self, thread_id: str, *turns: Any) -> Any:
        self.fake.script(fake_name(self.model), list(turns))
        return self.client.beta.threads.runs.create(thread_id, assistant_id=self.assistant.id)

    def park(self) -> tuple[str, str]:
        """A run left waiting for tool outputs: in progress until something ends it."""
        thread_id = self.thread()
        run = self.run(thread_id, tool_calls([("call_1", "get_weather", {"city": "Paris"})]))
        assert self.wait(thread_id, run.id, {"requires_action"} | TERMINAL).status == "requires_action"
        return thread_id, run.id

    def wait(self, thread_id: str, run_id: str, statuses: set[str], timeout: float = 30) -> Any:
        return wait_for(self.client, thread_id, run_id, statuses, timeout)

    def refused_run(self, thread_id: str) -> dict[str, Any]:
        """Create a run that must be over the runs limit; the 429's body (waiting out any
        request-limit 429 on the way)."""
        for _ in range(20):
            try:
                run = self.strict.beta.threads.runs.create(thread_id, assistant_id=self.assistant.id)
            except openai.RateLimitError as error:
                assert isinstance(error.body, dict)
                if error.body["type"] == "requests":
                    time.sleep(int(error.response.headers["retry-after-ms"]) / 1000)
                    continue
                assert error.response.headers["x-ratelimit-limit-runs"] == str(RUNS)
                return error.body
            raise AssertionError(f"run {run.id} was created over the limit")
        raise AssertionError("the request limit never let the run through")

    def allowed_run(self, thread_id: str) -> Any:
        self.fake.script(fake_name(self.model), [text("Sunny.")])
        run = self.client.with_options(max_retries=10).beta.threads.runs.create(
            thread_id, assistant_id=self.assistant.id
        )
        assert self.wait(thread_id, run.id, TERMINAL).status == "completed"
        return run


def test_a_run_over_the_limit_is_429_and_creates_nothing(
    limited: Callable[..., OpenAI], fake_llm: FakeLLM, _limited_stack: tuple[Future[tuple[Any, str]], int]
) -> None:
    aws_port = _limited_stack[1]
    key = Key(limited, fake_llm)
    (thread_a, run_a), _ = key.park(), key.park()
    thread_c = key.thread()

    body = key.refused_run(thread_c)
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "runs" and body["param"] is None
    assert re.fullmatch(
        r"Rate limit reached for API key [0-9a-f]{16} on runs in progress: Limit 2, Requested 1\. "
        r"Please try again once one of this key's runs has ended\.",
        body["message"],
    )
    assert key.client.beta.threads.runs.list(thread_c).data == []
    key.client.beta.threads.messages.create(thread_c, role="user", content="Not locked")  # no lock taken
    with pytest.raises(openai.RateLimitError):
        key.strict.with_options(max_retries=3).beta.threads.create_and_run(
            assistant_id=key.assistant.id, thread={"messages": [{"role": "user", "content": "Hi"}]}
        )

    # another key of its own has its own runs
    other = Key(limited, fake_llm)
    other.allowed_run(other.thread())

    key.client.beta.threads.runs.cancel(run_a, thread_id=thread_a)
    assert key.wait(thread_a, run_a, TERMINAL).status == "cancelled"
    _assert_slots(aws_port, key.api_key, 1)  # given back by the cancel itself
    key.allowed_run(thread_c)
    _assert_slots(aws_port, key.api_key, 1)


def test_failed_and_completed_runs_give_their_slot_back(
    limited: Callable[..., OpenAI], fake_llm: FakeLLM, _limited_stack: tuple[Future[tuple[Any, str]], int]
) -> None:
    aws_port = _limited_stack[1]
    key = Key(limited, fake_llm)
    key.park()
    # the model's error fails the run in the agent step
    thread = key.thread()
    failed = key.run(thread, server_error())
    assert key.wait(thread, failed.id, TERMINAL).status == "failed"
    _assert_slots(aws_port, key.api_key, 1)
    # a crash of the agent step: the state machine's MarkFailed ends the run
    _, url = _limited_stack[0].result()
    injected = httpx.post(f"{url}/_local/faults", json={"function": "AgentStepFunction", "times": 1}, timeout=10)
    assert injected.status_code == 200
    thread = key.thread()
    crashed = key.run(thread)
    run = key.wait(thread, crashed.id, TERMINAL)
    assert run.status == "failed" and run.last_error is not None and run.last_error.code == "server_error"
    _assert_slots(aws_port, key.api_key, 1)
    key.allowed_run(key.thread())  # a completed run
    _assert_slots(aws_port, key.api_key, 1)
    # the limit still counts exactly the parked run: one more fits, and then no more
    key.park()
    key.refused_run(key.thread())


def test_a_deleted_threads_run_stops_counting(
    limited: Callable[..., OpenAI], fake_llm: FakeLLM, _limited_stack: tuple[Future[tuple[Any, str]], int]
) -> None:
    key = Key(limited, fake_llm)
    (thread_a, _), _ = key.park(), key.park()
    thread_c = key.thread()
    key.refused_run(thread_c)
    key.client.beta.threads.delete(thread_a)  # its run never ends: its slot is dropped at the limit
    key.allowed_run(thread_c)
    _assert_slots(_limited_stack[1], key.api_key, 1)  # the parked run's
    key.park()
    key.refused_run(key.thread())


def _assert_slots(aws_port: int, api_key: str, count: int) -> None:
    """The key's slots in the table are its runs in progress (a run's end frees its slot just
    after the status the client sees: allow a moment)."""
    import hashlib

    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{aws_port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    key_id = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    (table,) = [t for t in dynamodb.tables.all() if "AssistantsTable" in t.name]
    deadline = time.monotonic() + 3
    while True:
        item = table.get_item(Key={"PK": f"T#key-{key_id}#KEY#{key_id}", "SK": "RATE#RUNS"}).get("Item") or {}
        if len(item.get("runs", set())) == count or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(item.get("runs", set())) == count, item
