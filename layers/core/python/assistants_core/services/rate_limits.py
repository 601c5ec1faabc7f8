"""Rate limits per API key: requests per second, and runs in progress at once.

Both are off until configured (``RATE_LIMIT_REQUESTS_PER_SECOND``, ``RATE_LIMIT_BURST``,
``RATE_LIMIT_CONCURRENT_RUNS``; 0 is off). A key over a limit gets OpenAI's 429: code
``rate_limit_exceeded``, a message that says when to try again, and the ``x-ratelimit-*``
headers (on every response while the request limit is on), with ``retry-after-ms`` and
``retry-after``, which the OpenAI SDKs wait before they retry.

* **Requests**: a token bucket per key of ``burst`` tokens refilled at the rate, one
  conditional write per request (:mod:`assistants_core.repository.rate_limits`), taken before
  any route runs (:mod:`assistants_core.api.rate_limits`).
* **Runs**: a run takes a slot of its key in the transaction that creates it (so a refused run
  creates nothing) and frees it when it ends, in :func:`~.lifecycle.transition`, through which
  every end of a run goes (the agent step, cancel, the state machine's MarkFailed and Expire).
  A slot is a run's claim only while its thread's lock names it: when a key is at its limit,
  the slots of runs that ended or whose thread was deleted without freeing them (a crash
  between the two writes, a deleted thread) are dropped before the run is refused, so the
  count can never lock a key out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from ..config import settings
from ..errors import RateLimitError
from ..repository import RUN_PREFIX, THREAD_SK, ConcurrentModification, Repository, TransactionConflict, thread_pk
from ..repository.rate_limits import RateLimitStore
from ..types.run_status import TERMINAL_STATUSES

MICROS = 1_000_000
# A run item's attribute naming the key whose slot it holds.
RUN_KEY_ATTRIBUTE = "rate_key"
# How long the items of a key that stopped calling stay (DynamoDB's TTL removes them later).
RUN_SLOTS_TTL_SECONDS = 7 * 24 * 3600
BUCKET_TTL_SECONDS = 3600


@dataclass(frozen=True)
class Caller:
    """Whose limits a request counts against: the key (``keyId``, from the authorizer), in its tenant."""

    tenant: str
    key_id: str


@dataclass(frozen=True)
class RequestLimit:
    rate: float  # tokens per second
    burst: int  # the bucket's size

    @property
    def interval(self) -> int:
        return max(1, round(MICROS / self.rate))

    @property
    def tolerance(self) -> int:
        return (self.burst - 1) * self.interval


def request_limit() -> RequestLimit | None:
    """The configured request limit; None when it is off. A burst of 0 is one second's worth."""
    rate = settings().rate_limit_requests_per_second
    if rate <= 0:
        return None
    return RequestLimit(rate=rate, burst=settings().rate_limit_burst or max(1, math.ceil(rate)))


def concurrent_runs_limit() -> int:
    return max(0, settings().rate_limit_concurrent_runs)


# ------------------------------------------------------------------ requests


@dataclass(frozen=True)
class RequestQuota:
    """The key's bucket after a request: OpenAI's ``x-ratelimit-*-requests`` headers."""

    limit: int
    remaining: int
    reset: int  # microseconds until the bucket is full again

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": duration(self.reset),
        }


# The bucket's state each key last had in this process: which of the two writes to try first.
_last_tat: dict[tuple[str, str], int] = {}


def take_request(repo: Repository, caller: Caller, limit: RequestLimit, now: int | None = None) -> RequestQuota:
    """Count one request against the key's bucket; raises RateLimitError (429) when it is empty."""
    now = time.time_ns() // 1000 if now is None else now
    key = (caller.tenant, caller.key_id)
    ttl = now // MICROS + (limit.tolerance + limit.interval) // MICROS + BUCKET_TTL_SECONDS
    taken = RateLimitStore(repo).take_token(
        caller.tenant,
        caller.key_id,
        now=now,
        interval=limit.interval,
        tolerance=limit.tolerance,
        ttl=ttl,
        guess_full=_last_tat.get(key, 0) <= now,
    )
    if len(_last_tat) > 10_000:
        _last_tat.clear()
    _last_tat[key] = taken.tat
    ahead = max(0, taken.tat - now)
    if taken.allowed:
        remaining = min(limit.burst, max(0, limit.burst - math.ceil(ahead / limit.interval)))
        return RequestQuota(limit=limit.burst, remaining=remaining, reset=ahead)
    wait = max(1000, ahead - limit.tolerance)  # until one token is back
    quota = RequestQuota(limit=limit.burst, remaining=0, reset=ahead)
    raise RateLimitError(
        f"Rate limit reached for API key {caller.key_id} on requests per second (RPS): Limit {limit.rate:g}, "
        f"Burst {limit.burst}, Requested 1. Please try again in {duration(wait)}.",
        error_type="requests",
        headers={**quota.headers(), **retry_after(wait)},
    )


def retry_after(micros: int) -> dict[str, str]:
    """``retry-after`` (whole seconds, as HTTP has it) and ``retry-after-ms``, which the SDKs prefer."""
    return {
        "retry-after": str(max(1, math.ceil(micros / MICROS))),
        "retry-after-ms": str(max(1, math.ceil(micros / 1000))),
    }


def duration(micros: int) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``17ms``, ``1.5s``, ``6m0s``."""
    ms = math.ceil(micros / 1000)
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, seconds = divmod(math.ceil(ms / 1000), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{seconds}s" if hours else f"{minutes}m{seconds}s"


# ------------------------------------------------------------------ runs in progress


def run_slot(thread_id: str, run_id: str) -> str:
    return f"{thread_id}/{run_id}"


def op_take_run_slot(repo: Repository, caller: Caller | None, thread_id: str, run_id: str) -> dict[str, Any] | None:
    """The transaction operation that takes a slot for a new run; None when the limit is off."""
    limit = concurrent_runs_limit()
    if caller is None or limit == 0:
        return None
    ttl = int(time.time()) + RUN_SLOTS_TTL_SECONDS
    return RateLimitStore(repo).op_take_run_slot(
        caller.tenant, caller.key_id, run_slot(thread_id, run_id), limit=limit, ttl=ttl
    )


def failed_at(error: ConcurrentModification, index: int) -> bool:
    """Whether a transaction failed on the condition of its operation ``index``."""
    cause = error.__cause__
    return (
        isinstance(cause, TransactionConflict)
        and len(cause.reasons) > index
        and cause.reasons[index] == "ConditionalCheckFailed"
    )


def free_stale_run_slots(repo: Repository, caller: Caller) -> bool:
    """Drop the key's slots whose run is no longer in progress (ended, or its thread gone);
    whether any was dropped. A slot is live while its thread's lock names its run."""
    store = RateLimitStore(repo)
    slots = store.run_slots(caller.tenant, caller.key_id)
    keys: list[tuple[str, str]] = []
    for slot in slots:
        thread_id, _, run_id = slot.partition("/")
        keys += [
            (thread_pk(caller.tenant, thread_id), THREAD_SK),
            (thread_pk(caller.tenant, thread_id), RUN_PREFIX + run_id),
        ]
    found = repo.get_many(keys) if keys else {}
    stale = set()
    for slot in slots:
        thread_id, _, run_id = slot.partition("/")
        pk = thread_pk(caller.tenant, thread_id)
        thread, run = found.get((pk, THREAD_SK)), found.get((pk, RUN_PREFIX + run_id))
        live = (
            thread is not None
            and thread.attributes.get("active_run_id") == run_id
            and run is not None
            and run.doc.get("status") not in TERMINAL_STATUSES
        )
        if not live:
            stale.add(slot)
    store.free_run_slots(caller.tenant, caller.key_id, stale)
    return bool(stale)


def runs_limit_error(caller: Caller) -> RateLimitError:
    limit = concurrent_runs_limit()
    return RateLimitError(
        f"Rate limit reached for API key {caller.key_id} on runs in progress: Limit {limit}, Requested 1. "
        "Please try again once one of this key's runs has ended.",
        error_type="runs",
        headers={"x-ratelimit-limit-runs": str(limit), "x-ratelimit-remaining-runs": "0"},
    )


def free_run_slot(repo: Repository, tenant: str, key_id: Any, thread_id: str, run_id: str) -> None:
    """Give back the slot a run took (idempotent; nothing when it took none)."""
    if key_id:
        RateLimitStore(repo).free_run_slots(tenant, str(key_id), {run_slot(thread_id, run_id)})
