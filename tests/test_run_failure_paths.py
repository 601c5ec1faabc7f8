"""A run always ends: the failure path when even saving the failed run goes wrong.

End to end, tests/test_large_content.py makes DynamoDB refuse the run as too large. Here the
save fails in the ways that test cannot provoke (S3 refusing the run's large values, endless
races): ``fail`` must still end the run ``failed`` with its ``last_error``, free the thread and
give back the key's run slot.
"""

from __future__ import annotations

from typing import Any

import pytest

from assistants_core.repository import RUN_PREFIX, THREAD_SK, ConcurrentModification, Repository, thread_pk
from assistants_core.repository.rate_limits import RateLimitStore
from assistants_core.services import lifecycle, rate_limits
from assistants_core.services import runs as run_service
from assistants_core.services.assistants import create_assistant
from assistants_core.services.lifecycle import RunRef, fail
from assistants_core.services.rate_limits import Caller
from assistants_core.services.threads import create_thread
from assistants_core.types import AssistantCreateParams, MessageCreateParams, Run, RunCreateParams, ThreadCreateParams


class _Orchestrator:
    def start(self, tenant: str, thread_id: str, run_id: str, *, event_seq: int = 0) -> None:
        pass


@pytest.mark.parametrize(
    "failure", [RuntimeError("S3 PutObject: ServiceUnavailable"), ConcurrentModification("too many changes")]
)
def test_a_run_whose_failure_cannot_be_saved_still_ends_failed(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    monkeypatch.setattr(rate_limits, "concurrent_runs_limit", lambda: 5)
    tenant, caller = "tenant_fail_paths", Caller("tenant_fail_paths", "key1")
    assistant = create_assistant(repo, tenant, AssistantCreateParams(model="openai/any"))
    thread = create_thread(repo, tenant, ThreadCreateParams(messages=[MessageCreateParams(role="user", content="Hi")]))
    run = run_service.create_run(
        repo, _Orchestrator(), tenant, thread.id, RunCreateParams(assistant_id=assistant.id), caller=caller
    )
    assert RateLimitStore(repo).run_slots(tenant, "key1") == {f"{thread.id}/{run.id}"}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(lifecycle, "transition", broken)
    failed = fail(repo, RunRef(tenant, thread.id, run.id), "server_error", "The model call failed.", None)

    assert failed is not None and failed.status == "failed"
    stored = repo.get(thread_pk(tenant, thread.id), RUN_PREFIX + run.id)
    assert stored is not None
    saved = Run.model_validate(stored.doc)
    assert saved.status == "failed" and saved.last_error is not None
    assert saved.last_error.message == "The model call failed."
    thread_item = repo.get(thread_pk(tenant, thread.id), THREAD_SK)
    assert thread_item is not None and "active_run_id" not in thread_item.attributes
    assert RateLimitStore(repo).run_slots(tenant, "key1") == set()
