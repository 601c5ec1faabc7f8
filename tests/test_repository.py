"""The repository's conditional writes and queries, on moto and on DynamoDB Local.

Every test runs on both engines (``repo`` is parametrized): moto is what the fast unit tests use,
DynamoDB Local is Amazon's own engine and proves the expressions, cursors and transaction
semantics hold where moto is lenient.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from boto3.dynamodb.conditions import Attr, ConditionExpressionBuilder, Key
from botocore.exceptions import ClientError

from assistants_core.ids import new_id
from assistants_core.repository import (
    API_KEYS_PK,
    ASSISTANT_PREFIX,
    EVENT_PREFIX,
    MESSAGE_PREFIX,
    RUN_PREFIX,
    THREAD_SK,
    ConcurrentModification,
    EventSequenceTaken,
    ItemTooLarge,
    Page,
    Repository,
    TransactionConflict,
    event_sk,
    run_log_pk,
    step_prefix,
    tenant_pk,
    thread_pk,
)
from assistants_core.repository.content import StaleContent
from tests.harness.dynamo_fixtures import repository_for

TENANT = "tenant_a"
LOCK_CONDITION = "attribute_exists(PK) AND attribute_not_exists(active_run_id)"


def _twin(repo: Repository) -> Repository:
    """Another repository on the same table with its own boto3 objects (safe in another thread)."""
    return repository_for(repo.table.name, repo.client.meta.endpoint_url, repo.content.blobs)


def _ids(page: Page) -> list[str]:
    return [doc["id"] for doc in page.items]


def _partition(repo: Repository, pk: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("PK").eq(pk), "ConsistentRead": True}
    while True:
        response = repo.table.query(**kwargs)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _race(workers: int, make: Callable[[], Callable[[], Any]]) -> list[Any]:
    """Run ``workers`` callables released together by a barrier; each result or the exception it raised."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:  # collected and asserted on by the caller
            results[index] = error

    calls = [make() for _ in range(workers)]  # built up front: boto3 session setup is not thread-safe
    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


# ---------------------------------------------------------------- documents


def test_create_twice_is_a_concurrent_modification(repo: Repository) -> None:
    pk, sk = tenant_pk(TENANT), ASSISTANT_PREFIX + "asst_1"
    repo.create(pk, sk, {"id": "asst_1", "name": "first"}, ttl=1_900_000_000, owner="x")

    with pytest.raises(ConcurrentModification):
        repo.create(pk, sk, {"id": "asst_1", "name": "second"})

    stored = repo.get(pk, sk)
    assert stored is not None
    assert stored.doc == {"id": "asst_1", "name": "first"}
    assert stored.version == 1
    assert stored.attributes == {"ttl": 1_900_000_000, "owner": "x"}


def test_get_missing_is_none(repo: Repository) -> None:
    assert repo.get(tenant_pk(TENANT), ASSISTANT_PREFIX + "asst_nope") is None
    assert repo.get_doc(tenant_pk(TENANT), ASSISTANT_PREFIX + "asst_nope") is None
    assert repo.get_attribute(tenant_pk(TENANT), ASSISTANT_PREFIX + "asst_nope", "status") is None


def test_get_attribute_reads_a_mirrored_field(repo: Repository) -> None:
    pk, sk = tenant_pk(TENANT), ASSISTANT_PREFIX + "asst_1"
    repo.create(pk, sk, {"id": "asst_1", "status": "in_progress"})
    assert repo.get_attribute(pk, sk, "status") == "in_progress"
    assert repo.get_attribute(pk, sk, "run_id") is None  # the doc has none, so no mirror


def test_save_with_stale_version_fails_and_leaves_the_doc(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_1"
    repo.create(pk, sk, {"id": "run_1", "status": "queued"})
    assert repo.save(pk, sk, {"id": "run_1", "status": "in_progress"}, expected_version=1) == {}

    with pytest.raises(ConcurrentModification):
        repo.save(pk, sk, {"id": "run_1", "status": "cancelled"}, expected_version=1)
    with pytest.raises(ConcurrentModification):
        repo.save(pk, sk, {"id": "run_1", "status": "cancelled"}, expected_version=3)

    stored = repo.get(pk, sk)
    assert stored is not None
    assert (stored.doc, stored.version) == ({"id": "run_1", "status": "in_progress"}, 2)
    assert stored.attributes["status"] == "in_progress"  # mirrored beside the doc


def test_an_item_saved_as_a_new_doc_is_what_a_read_would_give(repo: Repository) -> None:
    """What a writer keeps instead of reading again (StoredDoc.saved_as) matches the read."""
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_saved"
    repo.create(pk, sk, {"id": "run_saved", "status": "queued", "run_id": "run_saved"})
    repo.update_attributes(pk, sk, set_values={"kept": "yes", "dropped": "soon"})
    before = repo.get(pk, sk)
    assert before is not None
    doc = {"id": "run_saved", "status": "in_progress", "run_id": None}  # a mirrored value cleared
    repo.save(pk, sk, doc, expected_version=before.version, remove=["dropped"])
    assert before.saved_as(doc, ["dropped"]) == repo.get(pk, sk)


def test_save_on_a_missing_item_fails_without_creating_it(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_gone"
    with pytest.raises(ConcurrentModification):
        repo.save(pk, sk, {"id": "run_gone"}, expected_version=1)
    assert repo.get(pk, sk) is None


def test_save_keeps_attributes_it_does_not_own(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    repo.create(pk, THREAD_SK, {"id": "thread_1", "metadata": {}})
    repo.update_attributes(pk, THREAD_SK, set_values={"active_run_id": "run_1"})

    repo.save(pk, THREAD_SK, {"id": "thread_1", "metadata": {"k": "v"}}, expected_version=1)

    stored = repo.get(pk, THREAD_SK)
    assert stored is not None
    assert stored.version == 2
    assert stored.doc == {"id": "thread_1", "metadata": {"k": "v"}}
    assert stored.attributes["active_run_id"] == "run_1"

    # ...and removes one only when told to, while setting extra attributes in the same write.
    repo.save(pk, THREAD_SK, stored.doc, expected_version=2, remove=["active_run_id"], note="n")
    stored = repo.get(pk, THREAD_SK)
    assert stored is not None
    assert "active_run_id" not in stored.attributes
    assert stored.attributes["note"] == "n"
    assert stored.version == 3


def test_save_returns_the_old_item_atomically(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_1"
    repo.create(pk, sk, {"id": "run_1", "status": "requires_action"}, task_token="tok")

    old = repo.save(
        pk, sk, {"id": "run_1", "status": "queued"}, expected_version=1, remove=["task_token"], return_old=True
    )

    assert (old["task_token"], old["status"], old["version"]) == ("tok", "requires_action", 1)
    assert json.loads(old["doc"]) == {"id": "run_1", "status": "requires_action"}
    stored = repo.get(pk, sk)
    assert stored is not None
    assert (stored.doc, stored.version) == ({"id": "run_1", "status": "queued"}, 2)
    assert stored.attributes == {"status": "queued"}
    with pytest.raises(ConcurrentModification):  # the loser of the same race learns nothing
        repo.save(
            pk, sk, {"id": "run_1", "status": "queued"}, expected_version=1, remove=["task_token"], return_old=True
        )


def test_op_save_checks_the_version_inside_a_transaction(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_1"
    repo.create(pk, sk, {"id": "run_1", "status": "queued"})
    repo.save(pk, sk, {"id": "run_1", "status": "in_progress"}, expected_version=1)

    with pytest.raises(TransactionConflict) as conflict:
        repo.transact(
            [
                repo.op_save(pk, sk, {"id": "run_1", "status": "cancelled"}, expected_version=1),
                repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1"}),
            ]
        )
    assert conflict.value.reasons == ["ConditionalCheckFailed", "None"]
    assert repo.get(pk, MESSAGE_PREFIX + "msg_1") is None

    repo.transact(
        [
            repo.op_save(pk, sk, {"id": "run_1", "status": "completed"}, expected_version=2, usage="u"),
            repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1"}),
        ]
    )
    stored = repo.get(pk, sk)
    assert stored is not None
    assert (stored.doc["status"], stored.version, stored.attributes) == (
        "completed",
        3,
        {"status": "completed", "usage": "u"},
    )
    assert repo.get_doc(pk, MESSAGE_PREFIX + "msg_1") == {"id": "msg_1"}


def test_mutate_retries_a_lost_race(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), MESSAGE_PREFIX + "msg_1"
    repo.create(pk, sk, {"id": "msg_1", "tags": []})
    other = _twin(repo)
    calls: list[list[str]] = []

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        calls.append(list(doc["tags"]))
        if len(calls) == 1:  # somebody else writes between our read and our write
            stored = other.get(pk, sk)
            assert stored is not None
            other.save(pk, sk, {**stored.doc, "tags": ["theirs"]}, expected_version=stored.version)
        doc["tags"].append("mine")
        return doc

    result = repo.mutate(pk, sk, change)

    assert calls == [[], ["theirs"]]
    assert result == {"id": "msg_1", "tags": ["theirs", "mine"]}
    stored = repo.get(pk, sk)
    assert stored is not None
    assert (stored.doc, stored.version) == (result, 3)


def test_mutate_gives_up_after_its_attempts(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), MESSAGE_PREFIX + "msg_1"
    repo.create(pk, sk, {"id": "msg_1", "n": 0})
    other = _twin(repo)
    calls = 0

    def always_interfered(doc: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        other.mutate(pk, sk, lambda d: {**d, "n": d["n"] + 1})
        return {**doc, "n": -1}

    with pytest.raises(ConcurrentModification):
        repo.mutate(pk, sk, always_interfered, attempts=3)
    assert calls == 3
    stored = repo.get(pk, sk)
    assert stored is not None
    assert (stored.doc["n"], stored.version) == (3, 4)


def test_mutate_missing_and_no_change(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), MESSAGE_PREFIX + "msg_1"
    assert repo.mutate(pk, sk, lambda doc: doc) is None
    repo.create(pk, sk, {"id": "msg_1"})
    assert repo.mutate(pk, sk, lambda doc: None) == {"id": "msg_1"}
    stored = repo.get(pk, sk)
    assert stored is not None
    assert stored.version == 1  # returning None writes nothing


def test_delete_reports_whether_the_item_existed(repo: Repository) -> None:
    pk, sk = tenant_pk(TENANT), ASSISTANT_PREFIX + "asst_1"
    assert repo.delete(pk, sk) is False
    repo.create(pk, sk, {"id": "asst_1"})
    assert repo.delete(pk, sk) is True
    assert repo.get(pk, sk) is None
    assert repo.delete(pk, sk) is False


def test_delete_partition_removes_everything_under_the_key(repo: Repository) -> None:
    pk, kept_pk = thread_pk(TENANT, "thread_1"), thread_pk(TENANT, "thread_2")
    repo.create(pk, THREAD_SK, {"id": "thread_1"})
    for _ in range(40):
        message_id = new_id("msg")
        repo.create(pk, MESSAGE_PREFIX + message_id, {"id": message_id})
    for run in ("run_1", "run_2"):
        repo.create(pk, RUN_PREFIX + run, {"id": run})
        for step in range(3):
            repo.create(pk, f"{step_prefix(run)}step_{step}", {"id": f"step_{step}"})
    repo.create(kept_pk, THREAD_SK, {"id": "thread_2"})
    repo.create(kept_pk, MESSAGE_PREFIX + "msg_kept", {"id": "msg_kept"})
    assert len(_partition(repo, pk)) == 49

    repo.delete_partition(pk)

    assert _partition(repo, pk) == []
    assert sorted(item["SK"] for item in _partition(repo, kept_pk)) == [MESSAGE_PREFIX + "msg_kept", THREAD_SK]
    repo.delete_partition(thread_pk(TENANT, "thread_never"))  # an empty partition is fine


def test_an_update_measures_the_item_as_it_will_be(repo: Repository) -> None:
    """Replacing a 300 KB doc with another is a 300 KB item, not 600 KB (a run with long
    instructions rewrites its doc at every status change)."""
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_long"
    long = "a" * 300_000
    repo.create(pk, sk, {"id": "run_long", "instructions": long, "status": "queued"})
    repo.save(pk, sk, {"id": "run_long", "instructions": long, "status": "in_progress"}, expected_version=1)
    repo.transact(
        [repo.op_save(pk, sk, {"id": "run_long", "instructions": long, "status": "done"}, expected_version=2)]
    )
    assert repo.get_attribute(pk, sk, "status") == "done"


def test_item_size_limit_fails_loudly(repo: Repository) -> None:
    """DynamoDB items stop at 400 KB (names + values): an item outside every tenant (whose
    values never go to S3) that big is DynamoDB's ValidationException, raised as ItemTooLarge
    naming the item, on every write path, and nothing is written."""
    pk = API_KEYS_PK
    too_big = {"id": "key_big", "text": "a" * (400 * 1024)}
    with pytest.raises(ItemTooLarge) as created:
        repo.create(pk, "KEY#big", too_big)
    assert created.value.key == (pk, "KEY#big")
    assert isinstance(created.value.__cause__, ClientError)
    assert created.value.__cause__.response["Error"]["Code"] == "ValidationException"
    assert repo.get(pk, "KEY#big") is None

    repo.create(pk, "KEY#fits", {"id": "fits"})
    with pytest.raises(ItemTooLarge) as saved:
        repo.save(pk, "KEY#fits", too_big, expected_version=1)
    assert saved.value.key == (pk, "KEY#fits")
    stored = repo.get(pk, "KEY#fits")
    assert stored is not None and (stored.doc, stored.version) == ({"id": "fits"}, 1)

    with pytest.raises(ItemTooLarge) as transacted:
        repo.transact([repo.op_put(pk, "KEY#small", {"id": "small"}), repo.op_put(pk, "KEY#big", too_big)])
    assert transacted.value.key == (pk, "KEY#big")
    assert repo.get(pk, "KEY#small") is None

    with pytest.raises(ItemTooLarge) as appended:
        repo.append_events("LOG", 1, [("thread.run.created", too_big)], ttl=1)
    assert appended.value.key == ("LOG", event_sk(1))


def _objects(repo: Repository, thread_id: str) -> list[str]:
    """The S3 objects of a thread's items (the bucket is shared by every test of the session)."""
    return repo.content.blobs.list_keys(f"t/{TENANT}/items/THREAD%23{thread_id}/")


def _raw(repo: Repository, pk: str, sk: str) -> dict[str, Any]:
    return dict(repo.table.get_item(Key={"PK": pk, "SK": sk}, ConsistentRead=True)["Item"])


def test_values_too_large_for_an_item_go_to_s3_on_every_write_and_read_path(repo: Repository) -> None:
    """A doc or attribute over INLINE_BYTES is an S3 object under the tenant with a pointer in
    the item; every read resolves it, a rewrite replaces the object, and deleting the item (or
    its partition) deletes its objects."""
    thread_id = new_id("thread")
    pk, sk = thread_pk(TENANT, thread_id), MESSAGE_PREFIX + "msg_big"
    big = {"id": "msg_big", "status": "completed", "text": "é" * 300_000}  # 600 KB of UTF-8
    outputs = "o" * 450_000
    repo.create(pk, sk, big, tool_outputs=outputs)
    stored = repo.get(pk, sk)
    assert stored is not None and stored.doc == big and stored.attributes["tool_outputs"] == outputs
    raw = _raw(repo, pk, sk)
    assert "doc" not in raw and "tool_outputs" not in raw and raw["status"] == "completed"
    assert int(raw["doc_s3"]["bytes"]) == len(json.dumps(big, separators=(",", ":")).encode())
    assert str(raw["doc_s3"]["key"]).startswith(f"t/{TENANT}/items/THREAD%23{thread_id}/MSG%23msg_big/doc/")
    assert len(_objects(repo, thread_id)) == 2

    rewritten = {**big, "text": "b" * 420_000}
    repo.save(pk, sk, rewritten, expected_version=1)
    stored = repo.get(pk, sk)
    assert stored is not None and (stored.doc, stored.version) == (rewritten, 2)
    assert stored.attributes["tool_outputs"] == outputs  # not rewritten: its object stays
    assert len(_objects(repo, thread_id)) == 2  # the first doc's object went with the write

    # Back under the limit: the doc is inline again, the pointer gone.
    repo.save(pk, sk, {"id": "msg_big", "text": "small"}, expected_version=2, tool_outputs="short")
    raw = _raw(repo, pk, sk)
    assert raw["doc"] == '{"id":"msg_big","text":"small"}' and "doc_s3" not in raw and "tool_outputs_s3" not in raw
    assert repo.get_doc(pk, sk) == {"id": "msg_big", "text": "small"}

    # A transaction, the lists, the partition and batch reads.
    repo.create(pk, THREAD_SK, {"id": "thread_big"})
    second = {"id": "msg_2", "text": "ü" * 200_000}
    repo.transact(
        [
            repo.op_save(pk, sk, rewritten, expected_version=3),
            repo.op_put(pk, MESSAGE_PREFIX + "msg_2", second),
            repo.op_update(pk, THREAD_SK, "SET active_run_id = :r", LOCK_CONDITION, {":r": "run_1"}),
        ]
    )
    assert repo.list(pk, MESSAGE_PREFIX, limit=10, order="asc").items == [second, rewritten]
    assert repo.list(pk, MESSAGE_PREFIX, limit=1, order="asc", where={"status": "completed"}).items == [rewritten]
    assert [doc["id"] for doc in repo.partition(pk)] == ["msg_2", "msg_big", "thread_big"]
    found = repo.get_many([(pk, sk), (pk, MESSAGE_PREFIX + "msg_2")])
    assert found[(pk, MESSAGE_PREFIX + "msg_2")].doc == second
    assert repo.mutate(pk, sk, lambda doc: {**doc, "text": doc["text"] + "!"}) == {
        **rewritten,
        "text": "b" * 420_000 + "!",
    }

    assert repo.delete(pk, MESSAGE_PREFIX + "msg_2")
    assert not [key for key in _objects(repo, thread_id) if "msg_2" in key]
    repo.delete_partition(pk)
    assert _objects(repo, thread_id) == []


def test_a_write_that_fails_leaves_no_object_and_a_stale_pointer_is_read_again(repo: Repository) -> None:
    thread_id = new_id("thread")
    pk, sk = thread_pk(TENANT, thread_id), RUN_PREFIX + "run_1"
    long = {"id": "run_1", "instructions": "i" * 300_000}
    repo.create(pk, sk, long)
    before = _objects(repo, thread_id)
    with pytest.raises(ConcurrentModification):
        repo.save(pk, sk, {**long, "status": "lost"}, expected_version=7)
    with pytest.raises(ConcurrentModification):
        repo.create(pk, sk, long)
    assert _objects(repo, thread_id) == before
    # A failed transaction keeps its objects, for its caller may retry the same operations (and
    # then the retry's item points at them); the partition's deletion takes them all.
    retried = [repo.op_put(pk, RUN_PREFIX + "run_2", long), repo.op_condition(pk, THREAD_SK, "attribute_exists(PK)")]
    with pytest.raises(TransactionConflict):
        repo.transact(retried)
    repo.create(pk, THREAD_SK, {"id": thread_id})
    repo.transact(retried)
    assert repo.get_doc(pk, RUN_PREFIX + "run_2") == long

    # A reader that got the item just before a rewrite finds its object gone: it reads again.
    stale = _raw(repo, pk, sk)
    repo.save(pk, sk, {**long, "status": "new"}, expected_version=1)
    with pytest.raises(StaleContent):
        repo.content.resolve([stale])
    assert repo.get_doc(pk, sk) == {**long, "status": "new"}
    repo.delete_partition(pk)
    assert _objects(repo, thread_id) == []


def test_an_event_larger_than_a_log_item_goes_to_s3(repo: Repository) -> None:
    log = run_log_pk(TENANT, new_id("run"))
    answer = {"id": "msg_1", "text": "ß" * 400_000}
    assert repo.append_events(log, 1, [("a", {"n": 1}), ("thread.message.completed", answer), ("b", {})], ttl=1) == 1
    events = repo.read_events(log, 0).events
    assert [(seq, name) for seq, name, _ in events] == [(1, "a"), (1, "thread.message.completed"), (1, "b")]
    assert json.loads(events[1][2]) == answer
    raw = _raw(repo, log, event_sk(1))
    assert raw["data"][1] == "" and set(raw["data_s3"]) == {"1"}
    key = str(raw["data_s3"]["1"]["key"])
    assert key.startswith(f"t/{TENANT}/events/")
    tags = repo.content.blobs.client.get_object_tagging(Bucket=repo.content.blobs.bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "kind", "Value": "run-event"}]  # the lifecycle rule's
    with pytest.raises(EventSequenceTaken):  # and a lost append leaves no object
        repo.append_events(log, 1, [("thread.message.completed", answer)], ttl=1)
    assert repo.content.blobs.list_keys(key.rsplit("/", 1)[0]) == [key]


# ---------------------------------------------------------------- lists


@pytest.fixture
def listed(repo: Repository) -> tuple[Repository, str, list[str]]:
    """27 assistants (ids in creation order) among neighbours that must never show up."""
    pk = tenant_pk(TENANT)
    ids = [new_id("asst") for _ in range(27)]
    for index, asst_id in enumerate(ids):
        repo.create(pk, ASSISTANT_PREFIX + asst_id, {"id": asst_id, "n": index})
    repo.create(pk, "ASSS#zzzz", {"id": "before_prefix"})  # sorts just before "ASST#"
    repo.create(pk, "ASSU#0000", {"id": "after_prefix"})  # and just after
    repo.create(pk, "ASST", {"id": "prefix_without_hash"})
    repo.create(tenant_pk("tenant_b"), ASSISTANT_PREFIX + new_id("asst"), {"id": "other_tenant"})
    assert ids == sorted(ids)
    return repo, pk, ids


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_list_walks_after_pages_for_every_limit(listed: tuple[Repository, str, list[str]], order: str) -> None:
    repo, pk, ids = listed
    expected = ids if order == "asc" else ids[::-1]
    for limit in [*range(1, 31), 50, 99, 100]:
        seen: list[str] = []
        after: str | None = None
        for page_number in range(len(expected) + 1):
            page = repo.list(pk, ASSISTANT_PREFIX, limit=limit, order=order, after=after)  # type: ignore[arg-type]
            start = page_number * limit
            assert _ids(page) == expected[start : start + limit], (limit, page_number)
            assert page.has_more is (start + limit < len(expected)), (limit, page_number)
            seen.extend(_ids(page))
            if not page.has_more:
                break
            after = page.items[-1]["id"]
        assert seen == expected, limit  # every item exactly once, in order
        assert seen[0] == expected[0] and seen[-1] == expected[-1]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_list_walks_before_pages_back_in_list_order(listed: tuple[Repository, str, list[str]], order: str) -> None:
    repo, pk, ids = listed
    expected = ids if order == "asc" else ids[::-1]
    for limit in (1, 2, 3, 4, 5, 7, 10, 13, 25, 26, 27, 100):
        seen: list[str] = []
        before = expected[-1]
        end = len(expected) - 1
        while True:
            page = repo.list(pk, ASSISTANT_PREFIX, limit=limit, order=order, before=before)  # type: ignore[arg-type]
            start = max(0, end - limit)
            assert _ids(page) == expected[start:end], (limit, end)
            assert page.has_more is (start > 0), (limit, end)
            seen = _ids(page) + seen
            if not page.has_more:
                break
            before, end = page.items[0]["id"], start
        assert seen + [expected[-1]] == expected, limit


def test_list_edges_and_cursors_that_no_longer_exist(listed: tuple[Repository, str, list[str]]) -> None:
    repo, pk, ids = listed
    first = repo.list(pk, ASSISTANT_PREFIX, limit=20)
    assert _ids(first) == ids[::-1][:20] and first.has_more is True
    assert first.items[0] == {"id": ids[-1], "n": 26}  # docs come back whole

    everything = repo.list(pk, ASSISTANT_PREFIX, limit=27, order="asc")
    assert _ids(everything) == ids and everything.has_more is False

    assert repo.list(pk, ASSISTANT_PREFIX, limit=5, order="asc", after=ids[-1]) == Page(items=[], has_more=False)
    assert repo.list(pk, ASSISTANT_PREFIX, limit=5, order="desc", after=ids[0]) == Page(items=[], has_more=False)
    assert repo.list(pk, ASSISTANT_PREFIX, limit=5, order="asc", before=ids[0]) == Page(items=[], has_more=False)

    # A deleted object's id is still a valid cursor: ids are positions, not pointers.
    assert repo.delete(pk, ASSISTANT_PREFIX + ids[10]) is True
    after_deleted = repo.list(pk, ASSISTANT_PREFIX, limit=3, order="asc", after=ids[10])
    assert _ids(after_deleted) == ids[11:14] and after_deleted.has_more is True
    before_deleted = repo.list(pk, ASSISTANT_PREFIX, limit=3, order="asc", before=ids[10])
    assert _ids(before_deleted) == ids[7:10] and before_deleted.has_more is True
    desc_after_deleted = repo.list(pk, ASSISTANT_PREFIX, limit=3, order="desc", after=ids[10])
    assert _ids(desc_after_deleted) == [ids[9], ids[8], ids[7]]

    # An id created after everything (it sorts last) works as a cursor as well.
    later = new_id("asst")
    assert _ids(repo.list(pk, ASSISTANT_PREFIX, limit=2, order="desc", after=later)) == [ids[26], ids[25]]
    assert repo.list(pk, ASSISTANT_PREFIX, limit=2, order="asc", after=later) == Page(items=[], has_more=False)

    assert repo.list(tenant_pk("tenant_nobody"), ASSISTANT_PREFIX, limit=20) == Page(items=[], has_more=False)


def test_list_where_filter_with_sparse_matches(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    ids = [new_id("msg") for _ in range(120)]
    matching = {5, 60, 110}
    for index, message_id in enumerate(ids):
        run_id = "run_x" if index in matching else ("run_y" if index % 7 == 0 else None)
        repo.create(pk, MESSAGE_PREFIX + message_id, {"id": message_id, "run_id": run_id})
    repo.create(pk, RUN_PREFIX + "run_x", {"id": "run_x", "run_id": "run_x"})  # other prefix, same value
    m5, m60, m110 = (ids[i] for i in sorted(matching))
    where = {"run_id": "run_x"}

    page = repo.list(pk, MESSAGE_PREFIX, limit=2, order="asc", where=where)
    assert (_ids(page), page.has_more) == ([m5, m60], True)
    page = repo.list(pk, MESSAGE_PREFIX, limit=2, order="asc", where=where, after=m60)
    assert (_ids(page), page.has_more) == ([m110], False)

    page = repo.list(pk, MESSAGE_PREFIX, limit=2, order="desc", where=where)
    assert (_ids(page), page.has_more) == ([m110, m60], True)
    page = repo.list(pk, MESSAGE_PREFIX, limit=2, order="desc", where=where, after=m60)
    assert (_ids(page), page.has_more) == ([m5], False)

    page = repo.list(pk, MESSAGE_PREFIX, limit=2, order="asc", where=where, before=m110)
    assert (_ids(page), page.has_more) == ([m5, m60], False)
    page = repo.list(pk, MESSAGE_PREFIX, limit=1, order="asc", where=where, before=m110)
    assert (_ids(page), page.has_more) == ([m60], True)

    walked: list[str] = []
    after: str | None = None
    while True:
        page = repo.list(pk, MESSAGE_PREFIX, limit=1, order="asc", where=where, after=after)
        walked.extend(_ids(page))
        if not page.has_more:
            break
        after = page.items[-1]["id"]
    assert walked == [m5, m60, m110]

    page = repo.list(pk, MESSAGE_PREFIX, limit=3, order="asc", where=where)
    assert (_ids(page), page.has_more) == ([m5, m60, m110], False)
    page = repo.list(pk, MESSAGE_PREFIX, limit=100, order="desc", where={"run_id": "run_y"})
    assert _ids(page) == [ids[i] for i in range(119, -1, -1) if i % 7 == 0 and i not in matching]
    assert page.has_more is False
    assert repo.list(pk, MESSAGE_PREFIX, limit=20, where={"run_id": "run_none"}) == Page(items=[], has_more=False)


# ---------------------------------------------------------------- transactions and locks


def test_failed_condition_cancels_the_whole_transaction(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    repo.create(pk, THREAD_SK, {"id": "thread_1"})

    with pytest.raises(TransactionConflict) as conflict:
        repo.transact(
            [
                repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1"}, ttl=1_900_000_000),
                repo.op_update(pk, THREAD_SK, "SET #n = :n", "attribute_exists(PK)", {":n": 1}, {"#n": "touched"}),
                repo.op_condition(pk, RUN_PREFIX + "run_missing", "attribute_exists(PK)"),
            ]
        )
    assert conflict.value.reasons == ["None", "None", "ConditionalCheckFailed"]
    assert repo.get(pk, MESSAGE_PREFIX + "msg_1") is None
    thread = repo.get(pk, THREAD_SK)
    assert thread is not None and "touched" not in thread.attributes

    repo.create(pk, RUN_PREFIX + "run_1", {"id": "run_1"})
    repo.transact(
        [
            repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1", "status": "completed"}, ttl=1_900_000_000),
            repo.op_update(pk, THREAD_SK, "SET #n = :n", "attribute_exists(PK)", {":n": 1}, {"#n": "touched"}),
            repo.op_condition(pk, RUN_PREFIX + "run_1", "attribute_exists(PK)"),
        ]
    )
    message = repo.get(pk, MESSAGE_PREFIX + "msg_1")
    assert message is not None
    assert (message.doc, message.version) == ({"id": "msg_1", "status": "completed"}, 1)
    assert message.attributes == {"status": "completed", "ttl": 1_900_000_000}
    thread = repo.get(pk, THREAD_SK)
    assert thread is not None and thread.attributes["touched"] == 1

    # op_put never overwrites: the same message again cancels everything.
    with pytest.raises(TransactionConflict) as again:
        repo.transact(
            [
                repo.op_put(pk, MESSAGE_PREFIX + "msg_2", {"id": "msg_2"}),
                repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1", "status": "overwritten"}),
            ]
        )
    assert again.value.reasons == ["None", "ConditionalCheckFailed"]
    assert repo.get(pk, MESSAGE_PREFIX + "msg_2") is None
    assert repo.get_doc(pk, MESSAGE_PREFIX + "msg_1") == {"id": "msg_1", "status": "completed"}


def test_condition_check_with_values(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    repo.create(pk, RUN_PREFIX + "run_1", {"id": "run_1", "status": "in_progress"})
    check = repo.op_condition(pk, RUN_PREFIX + "run_1", "#s = :s", {":s": "queued"})
    check["ConditionCheck"]["ExpressionAttributeNames"] = {"#s": "status"}
    with pytest.raises(TransactionConflict) as conflict:
        repo.transact([check, repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1"})])
    assert conflict.value.reasons == ["ConditionalCheckFailed", "None"]

    check = repo.op_condition(pk, RUN_PREFIX + "run_1", "#s = :s", {":s": "in_progress"})
    check["ConditionCheck"]["ExpressionAttributeNames"] = {"#s": "status"}
    repo.transact([check, repo.op_put(pk, MESSAGE_PREFIX + "msg_1", {"id": "msg_1"})])
    assert repo.get_doc(pk, MESSAGE_PREFIX + "msg_1") == {"id": "msg_1"}


def _lock(repo: Repository, pk: str, run_id: str) -> list[dict[str, Any]]:
    """The create-run transaction: take the thread's run lock and store the run, together."""
    return [
        repo.op_update(pk, THREAD_SK, "SET active_run_id = :r", LOCK_CONDITION, {":r": run_id}),
        repo.op_put(pk, RUN_PREFIX + run_id, {"id": run_id, "status": "queued"}),
    ]


def test_thread_lock_admits_one_run(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    repo.create(pk, THREAD_SK, {"id": "thread_1"})

    repo.transact(_lock(repo, pk, "run_1"))
    with pytest.raises(TransactionConflict) as conflict:
        repo.transact(_lock(repo, pk, "run_2"))
    assert conflict.value.reasons == ["ConditionalCheckFailed", "None"]
    assert repo.get(pk, RUN_PREFIX + "run_2") is None
    thread = repo.get(pk, THREAD_SK)
    assert thread is not None and thread.attributes["active_run_id"] == "run_1"
    assert repo.get_doc(pk, RUN_PREFIX + "run_1") == {"id": "run_1", "status": "queued"}

    # Only the holder releases it; then the next run gets it.
    with pytest.raises(ConcurrentModification):
        repo.update_attributes(pk, THREAD_SK, remove=["active_run_id"], condition=Attr("active_run_id").eq("run_2"))
    repo.update_attributes(pk, THREAD_SK, remove=["active_run_id"], condition=Attr("active_run_id").eq("run_1"))
    repo.transact(_lock(repo, pk, "run_2"))
    thread = repo.get(pk, THREAD_SK)
    assert thread is not None and thread.attributes["active_run_id"] == "run_2"
    assert thread.doc == {"id": "thread_1"} and thread.version == 1  # the lock never touches the doc


def test_thread_lock_needs_the_thread(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_missing")
    with pytest.raises(TransactionConflict) as conflict:
        repo.transact(_lock(repo, pk, "run_1"))
    assert conflict.value.reasons == ["ConditionalCheckFailed", "None"]
    assert _partition(repo, pk) == []  # no stub thread, no orphan run


def test_thread_lock_race_has_one_winner(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    repo.create(pk, THREAD_SK, {"id": "thread_1"})
    workers = 8

    def make() -> Callable[[], Any]:
        mine, run_id = _twin(repo), new_id("run")
        return lambda: (mine.transact(_lock(mine, pk, run_id)), run_id)[1]

    results = _race(workers, make)
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if not isinstance(r, str)]
    assert len(winners) == 1, results
    # A loser either failed the condition or (real DynamoDB) collided with the winner's transaction.
    assert all(isinstance(r, TransactionConflict) for r in losers), losers
    assert all(r.reasons[0] in ("ConditionalCheckFailed", "TransactionConflict") for r in losers), losers
    thread = repo.get(pk, THREAD_SK)
    assert thread is not None and thread.attributes["active_run_id"] == winners[0]
    assert [item["SK"] for item in _partition(repo, pk) if item["SK"].startswith(RUN_PREFIX)] == [
        RUN_PREFIX + winners[0]
    ]


def test_task_token_claim_has_exactly_one_winner(repo: Repository) -> None:
    pk, sk = thread_pk(TENANT, "thread_1"), RUN_PREFIX + "run_1"
    for round_number in range(3):
        token = f"token-{round_number}"
        repo.delete(pk, sk)
        repo.create(pk, sk, {"id": "run_1", "status": "requires_action"}, task_token=token)

        def make() -> Callable[[], Any]:
            mine = _twin(repo)
            return lambda: mine.update_attributes(
                pk,
                sk,
                set_values={"status": "queued"},
                remove=["task_token"],
                condition=Attr("status").eq("requires_action"),
                return_old=True,
            )

        results = _race(8, make)
        winners = [r for r in results if isinstance(r, dict)]
        assert len(winners) == 1, results
        assert winners[0]["task_token"] == token and winners[0]["status"] == "requires_action"
        assert all(isinstance(r, ConcurrentModification) for r in results if not isinstance(r, dict)), results
        stored = repo.get(pk, sk)
        assert stored is not None
        assert stored.attributes["status"] == "queued" and "task_token" not in stored.attributes


def test_update_attributes_returns_old_item_only_when_asked(repo: Repository) -> None:
    pk = thread_pk(TENANT, "thread_1")
    repo.create(pk, THREAD_SK, {"id": "thread_1"})
    assert repo.update_attributes(pk, THREAD_SK, set_values={"a": "1", "b": 2}) is None
    old = repo.update_attributes(pk, THREAD_SK, set_values={"a": "2"}, remove=["b"], return_old=True)
    assert old is not None
    assert (old["a"], old["b"], json.loads(old["doc"])) == ("1", 2, {"id": "thread_1"})
    stored = repo.get(pk, THREAD_SK)
    assert stored is not None
    assert stored.attributes == {"a": "2"}


# ---------------------------------------------------------------- run event log


def test_append_events_takes_each_seq_once(repo: Repository) -> None:
    pk = run_log_pk(TENANT, "run_1")
    assert repo.last_event_seq(pk) == 0
    assert repo.read_events(pk, 0).events == []

    assert repo.append_events(pk, 1, [("thread.run.created", {"n": 1})], ttl=1_900_000_000) == 1
    with pytest.raises(ConcurrentModification):
        repo.append_events(pk, 1, [("thread.run.queued", {"n": "taken"})], ttl=1_900_000_000)

    # One append is one log item, however many events it holds.
    written = repo.append_events(
        pk, 2, [("thread.run.queued", {"n": 2}), ("thread.run.in_progress", {"n": 3})], ttl=1_900_000_000
    )
    assert written == 1
    assert repo.last_event_seq(pk) == 2
    with pytest.raises(ConcurrentModification):
        repo.append_events(pk, 2, [("a", {}), ("b", {}), ("c", {})], ttl=1_900_000_000)

    # An append too large for one item spreads over several, all or nothing: colliding on its
    # last item writes none of them.
    # (events under INLINE_BYTES each: a larger one would go to S3, see below)
    big = [(f"big.{i}", {"text": "x" * 99_000}) for i in range(5)]
    repo.append_events(pk, 4, [("thread.message.delta", {"n": 4})], ttl=1_900_000_000)
    with pytest.raises(ConcurrentModification):
        repo.append_events(pk, 3, big, ttl=1_900_000_000)
    assert [(seq, name) for seq, name, _ in repo.read_events(pk, 0).events] == [
        (1, "thread.run.created"),
        (2, "thread.run.queued"),
        (2, "thread.run.in_progress"),
        (4, "thread.message.delta"),
    ]
    assert repo.append_events(pk, 5, big, ttl=1_900_000_000) == 2
    assert [(seq, name) for seq, name, _ in repo.read_events(pk, 4).events] == [
        (5, "big.0"),
        (5, "big.1"),
        (5, "big.2"),
        (6, "big.3"),
        (6, "big.4"),
    ]
    assert repo.last_event_seq(pk) == 6

    item = repo.table.get_item(Key={"PK": pk, "SK": event_sk(2)}, ConsistentRead=True)["Item"]
    assert item["ttl"] == 1_900_000_000 and item["names"] == ["thread.run.queued", "thread.run.in_progress"]


def test_read_events_after_a_seq_in_order(repo: Repository) -> None:
    pk = run_log_pk(TENANT, "run_1")
    events = [(f"event.{seq}", {"seq": seq, "text": "x" * seq}) for seq in range(1, 13)]
    for seq, event in enumerate(events, start=1):
        repo.append_events(pk, seq, [event], ttl=1_900_000_000)
    repo.append_events(run_log_pk(TENANT, "run_2"), 1, [("other.run", {})], ttl=1_900_000_000)
    repo.create(pk, "FIN", {"id": "not an event"})  # sorts after EVT#, must not be read as one

    everything = repo.read_events(pk, 0).events
    assert [seq for seq, _, _ in everything] == list(range(1, 13))  # 10 after 9: zero-padded keys
    assert [(name, json.loads(data)) for _, name, data in everything] == events

    later = repo.read_events(pk, 9).events
    assert [(seq, name) for seq, name, _ in later] == [(10, "event.10"), (11, "event.11"), (12, "event.12")]
    assert json.loads(later[0][2]) == {"seq": 10, "text": "x" * 10}
    assert repo.read_events(pk, 12).events == []
    first_four = repo.read_events(pk, 3, limit=4)
    assert [seq for seq, _, _ in first_four.events] == [4, 5, 6, 7] and first_four.has_more
    assert not repo.read_events(pk, 9).has_more
    assert repo.last_event_seq(pk) == 12
    assert repo.last_event_seq(run_log_pk(TENANT, "run_2")) == 1
    assert all(item["SK"].startswith(EVENT_PREFIX) or item["SK"] == "FIN" for item in _partition(repo, pk))


def test_conditions_are_built_per_call_not_by_boto3s_shared_builder(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app shares one repository between threads (a stream's polls, the agent's delta
    timer, every function of the local stack). boto3 builds Key/Attr conditions with one
    builder per client whose placeholder counters all threads share (boto/boto3#1332): under
    ``make load`` two streams' reads of their logs built at once and failed ("KeyConditionExpressions
    must only contain one condition per key"). So each call builds its own, with a builder of
    its own: no builder may serve two calls."""
    builders: list[ConditionExpressionBuilder] = []  # kept alive, so that no id is reused
    build = ConditionExpressionBuilder.build_expression

    def spy(self: ConditionExpressionBuilder, *args: Any, **kwargs: Any) -> Any:
        builders.append(self)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(ConditionExpressionBuilder, "build_expression", spy)
    pk = run_log_pk(TENANT, new_id("run"))
    repo.append_events(pk, 1, [("thread.run.created", {})], ttl=1_900_000_000)
    for _ in range(3):
        assert repo.last_event_seq(pk) == 1  # Key conditions (the stream's read writes its own out)
    repo.create(tenant_pk(TENANT), "X#1", {"id": "x"})  # an Attr condition
    assert len(builders) >= 4
    assert len({id(builder) for builder in builders}) == len(builders)
