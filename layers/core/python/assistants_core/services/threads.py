"""Threads: create (with initial messages), read, update, delete."""

from __future__ import annotations

from ..errors import NotFoundError, too_large
from ..ids import new_id, now
from ..repository import THREAD_SK, ItemTooLarge, Repository, thread_pk
from ..types import DeletedObject, Message, Thread, ThreadCreateParams, ThreadUpdateParams
from .messages import build_message, message_sk


def create_thread(repo: Repository, tenant: str, params: ThreadCreateParams, *, param_prefix: str = "") -> Thread:
    """Create a thread and its initial messages in one transaction; ``param_prefix`` is where
    the thread sits in the request body (``thread.`` in create-and-run), for error params."""
    thread = Thread(
        id=new_id("thread"),
        created_at=now(),
        tool_resources=params.tool_resources.model_dump(exclude_none=True) if params.tool_resources else None,
        metadata=params.metadata or {},
    )
    messages: list[Message] = [build_message(thread.id, item) for item in params.messages]
    pk = thread_pk(tenant, thread.id)
    try:
        repo.transact(
            [repo.op_put(pk, THREAD_SK, thread.model_dump(mode="json"))]
            + [repo.op_put(pk, message_sk(m.id), m.model_dump(mode="json")) for m in messages]
        )
    except ItemTooLarge as error:
        index = next((i for i, m in enumerate(messages) if error.key == (pk, message_sk(m.id))), None)
        if index is None:
            raise too_large("The thread", param_prefix.rstrip(".") or None) from None
        raise too_large(f"Message {index}", f"{param_prefix}messages[{index}].content") from None
    return thread


def get_thread(repo: Repository, tenant: str, thread_id: str) -> Thread:
    doc = repo.get_doc(thread_pk(tenant, thread_id), THREAD_SK)
    if doc is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    return Thread.model_validate(doc)


def update_thread(repo: Repository, tenant: str, thread_id: str, params: ThreadUpdateParams) -> Thread:
    changes = params.changes()
    if changes.get("tool_resources"):
        changes["tool_resources"] = params.tool_resources.model_dump(exclude_none=True)  # type: ignore[union-attr]
    doc = repo.mutate(thread_pk(tenant, thread_id), THREAD_SK, lambda current: {**current, **changes})
    if doc is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    return Thread.model_validate(doc)


def delete_thread(repo: Repository, tenant: str, thread_id: str) -> DeletedObject:
    pk = thread_pk(tenant, thread_id)
    if not repo.delete(pk, THREAD_SK):
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    repo.delete_partition(pk)
    return DeletedObject(id=thread_id, object="thread.deleted")
