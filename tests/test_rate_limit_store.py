"""The rate limit items on moto and on DynamoDB Local: the request bucket's arithmetic (one
conditional write, the right answer whichever expression is tried first, exact under
concurrency) and the run slots' conditional set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from assistants_core.errors import RateLimitError
from assistants_core.repository import Repository, TransactionConflict
from assistants_core.repository.rate_limits import RateLimitStore
from assistants_core.services.rate_limits import Caller, RequestLimit, duration, take_request
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
