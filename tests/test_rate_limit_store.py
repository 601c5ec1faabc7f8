"""The rate limit items on moto and on DynamoDB Local: the request bucket's arithmetic (one
conditional write, the right answer whichever expression is tried first, exact under
concurrency) and the run slots' conditional set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from assistants_core.errors import RateLimitError
from assistants_core.repository import RUN_PREFIX, THREAD_SK, Repository, TransactionConflict, thread_pk
from assistants_core.repository.rate_limits import RateLimitStore
from assistants_core.services import rate_limits
from assistants_core.services import runs as run_service
from assistants_core.services.assistants import create_assistant
from assistants_core.services.lifecycle import RunRef, transition
from assistants_core.services.rate_limits import Caller, RequestLimit, duration, take_request
from assistants_core.services.threads import create_thread, delete_thread
from assistants_core.types import AssistantCreateParams, MessageCreateParams, RunCreateParams, ThreadCreateParams
from tests.harness.dynamo_fixtures import DynamoEngine, repository_for

SECOND = 1_000_000
T0 = 1_800_000_000 * SECOND


def take(store: RateLimitStore, now: int, *, burst: int = 3, rate: float = 1.0, guess_full: bool = True) -> bool:
    interval = round(SECOND / rate)
    taken = store.take_token(
        "t",
        "k",
        now=now,
        interval=interval,
        tolerance=(burst - 1) * interval,
        ttl=now // SECOND + 60,
        guess_full=guess_full,
    )
    return taken.allowed


@pytest.mark.parametrize("guess_full", [True, False])
def test_bucket_allows_its_burst_then_refills_at_its_rate(repo: Repository, guess_full: bool) -> None:
    store = RateLimitStore(repo)
    assert [take(store, T0, guess_full=guess_full) for _ in range(4)] == [True, True, True, False]
    assert not take(store, T0 + SECOND // 2, guess_full=guess_full)  # half a token back: not yet
    assert take(store, T0 + SECOND, guess_full=guess_full)  # one token back
    assert not take(store, T0 + SECOND, guess_full=guess_full)
    assert [take(store, T0 + 10 * SECOND, guess_full=guess_full) for _ in range(4)] == [True, True, True, False]


def test_bucket_of_one_allows_one_request_per_interval(repo: Repository) -> None:
    store = RateLimitStore(repo)
    assert take(store, T0, burst=1, rate=4)
    assert not take(store, T0 + SECOND // 8, burst=1, rate=4)
    assert take(store, T0 + SECOND // 4, burst=1, rate=4)


def test_request_quota_headers_and_refusal(repo: Repository) -> None:
    caller, limit = Caller("t", "k"), RequestLimit(rate=2, burst=4)
    quotas = [take_request(repo, caller, limit, now=T0) for _ in range(4)]
    assert [q.remaining for q in quotas] == [3, 2, 1, 0]
    assert quotas[-1].headers() == {
        "x-ratelimit-limit-requests": "4",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
    }
    with pytest.raises(RateLimitError) as refused:
        take_request(repo, caller, limit, now=T0 + SECOND // 10)
    error = refused.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded" and error.error_type == "requests"
    assert error.message.endswith("Please try again in 400ms.")
    assert error.headers["retry-after-ms"] == "400" and error.headers["retry-after"] == "1"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "1.9s"
    assert take_request(repo, caller, limit, now=T0 + SECOND // 2).remaining == 0
    # another key of the same tenant has its own bucket
    assert take_request(repo, Caller("t", "other"), limit, now=T0).remaining == 3


def test_bucket_is_exact_under_concurrency(dynamo_engine: DynamoEngine, assistants_table: str) -> None:
    def attempt(_: int) -> bool:
        store = RateLimitStore(repository_for(assistants_table, dynamo_engine.endpoint_url))
        return take(store, T0, burst=10, rate=1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(24)))
    assert results.count(True) == 10


def test_run_slots_are_limited_and_freed(repo: Repository) -> None:
    store = RateLimitStore(repo)

    def claim(slot: str) -> None:
        repo.transact([store.op_take_run_slot("t", "k", slot, limit=2, ttl=2_000_000_000)])

    claim("thread_a/run_1")
    claim("thread_b/run_2")
    with pytest.raises(TransactionConflict) as refused:
        claim("thread_c/run_3")
    assert refused.value.reasons == ["ConditionalCheckFailed"]
    assert store.run_slots("t", "k") == {"thread_a/run_1", "thread_b/run_2"}
    store.free_run_slots("t", "k", {"thread_a/run_1"})
    store.free_run_slots("t", "k", {"thread_a/run_1"})  # idempotent
    claim("thread_c/run_3")
    store.free_run_slots("t", "k", {"thread_b/run_2", "thread_c/run_3"})
    assert store.run_slots("t", "k") == set()
    claim("thread_d/run_4")  # the emptied set (DynamoDB removed the attribute) takes slots again
    store.free_run_slots("t", "nobody", {"x/y"})  # never creates an item
    assert store.run_slots("t", "nobody") == set()
    assert repo.table.get_item(Key={"PK": "T#t#KEY#nobody", "SK": "RATE#RUNS"}).get("Item") is None


def test_durations_as_openai_writes_them() -> None:
    assert [
        duration(us) for us in (1, 17_000, 999_000, 1_000_000, 1_500_000, 59_999_000, 360_000_000, 3_723_000_000)
    ] == [
        "1ms",
        "17ms",
        "999ms",
        "1s",
        "1.5s",
        "59.999s",
        "6m0s",
        "1h2m3s",
    ]


class Orchestrator:
    """Starts nothing; or fails to start (Step Functions refusing StartExecution)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def start(self, tenant: str, thread_id: str, run_id: str, *, event_seq: int = 0) -> None:
        if self.fail:
            raise RuntimeError("ThrottlingException: Rate exceeded")


def test_run_slots_through_a_runs_life(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paths the end-to-end tests do not take: expiry, a run whose execution never started,
    and a stale slot dropped at the limit."""
    monkeypatch.setattr(rate_limits, "concurrent_runs_limit", lambda: 1)
    tenant, caller = "tenant_slots", Caller("tenant_slots", "key1")
    store = RateLimitStore(repo)
    assistant = create_assistant(repo, tenant, AssistantCreateParams(model="openai/any"))
    params = RunCreateParams(assistant_id=assistant.id)

    def thread() -> str:
        messages = [MessageCreateParams(role="user", content="Hi")]
        return create_thread(repo, tenant, ThreadCreateParams(messages=messages)).id

    def create(thread_id: str, orchestrator: Any = None) -> Any:
        return run_service.create_run(repo, orchestrator or Orchestrator(), tenant, thread_id, params, caller=caller)

    thread_a, thread_b = thread(), thread()
    run = create(thread_a)
    assert store.run_slots(tenant, "key1") == {f"{thread_a}/{run.id}"}
    stored = repo.get(thread_pk(tenant, thread_a), RUN_PREFIX + run.id)
    assert stored is not None and stored.attributes["rate_key"] == "key1"
    with pytest.raises(RateLimitError) as refused:
        create(thread_b)
    assert refused.value.error_type == "runs" and refused.value.status_code == 429
    assert repo.list(thread_pk(tenant, thread_b), RUN_PREFIX, limit=10).items == []
    locked = repo.get(thread_pk(tenant, thread_b), THREAD_SK)
    assert locked is not None and "active_run_id" not in locked.attributes

    # expired (the state machine's Expire): the slot is back
    ref = RunRef(tenant, thread_a, run.id)
    for status, before in (
        ("in_progress", "queued"),
        ("requires_action", "in_progress"),
        ("expired", "requires_action"),
    ):
        assert transition(repo, ref, status, allowed_from={before}, events=None) is not None
    assert store.run_slots(tenant, "key1") == set()

    # an execution that never started fails the run, which gives its slot back
    with pytest.raises(RuntimeError):
        create(thread_b, Orchestrator(fail=True))
    assert store.run_slots(tenant, "key1") == set()

    # a slot whose thread was deleted is dropped when the key is at its limit
    create(thread_b)
    delete_thread(repo, tenant, thread_b)
    assert len(store.run_slots(tenant, "key1")) == 1
    run = create(thread_a)
    assert store.run_slots(tenant, "key1") == {f"{thread_a}/{run.id}"}


def test_the_local_gateway_plays_api_gateways_stage_throttling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's stage throttling (an outer bound for all keys) is read with its parameters,
    and over it the gateway answers the template's THROTTLED response before any authorizer."""
    import asyncio
    import json
    import re

    from local import gateway as gw
    from local.template import load_template

    throttle = gw.stage_throttle(load_template())
    assert throttle is not None and (throttle.rate, throttle.burst) == (1000.0, 2000.0)
    monkeypatch.setenv("LOCAL_PARAMETERS", "ApiThrottlingRateLimit=1,ApiThrottlingBurstLimit=2")
    throttle = gw.stage_throttle(load_template())
    assert throttle is not None and (throttle.rate, throttle.burst) == (1.0, 2.0)
    assert [throttle.allow() for _ in range(3)] == [True, True, False]
    throttle.updated -= 1.0  # a second later: one more
    assert [throttle.allow(), throttle.allow()] == [True, False]

    gateway = gw.Gateway.__new__(gw.Gateway)  # only what a throttled request reads
    gateway.routes = [gw.Route("GET", "/v1/assistants", re.compile("^/v1/assistants/?$"), "F", None)]
    gateway.responses = gw.gateway_responses(load_template())
    gateway.throttle = throttle
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/assistants", "headers": []}
    asyncio.run(gateway(scope, None, send))
    assert sent[0]["status"] == 429
    assert json.loads(sent[1]["body"]) == {
        "error": {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
