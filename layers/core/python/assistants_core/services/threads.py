"""Threads: create (with initial messages), read, update, delete."""

from __future__ import annotations

from ..code_interpreter import sessions as code_sessions
from ..code_interpreter.sandbox import Sandbox
from ..errors import NotFoundError, too_large
from ..ids import new_id, now
from ..repository import THREAD_SK, ItemTooLarge, Repository, thread_pk
from ..types import DeletedObject, Message, Thread, ThreadCreateParams, ThreadUpdateParams
from . import tool_resources
from .ingestion import IngestionStarter
from .messages import build_message, message_sk
from .tool_resources import check_attachments, index_attachments


def create_thread(
    repo: Repository,
    tenant: str,
    params: ThreadCreateParams,
    *,
    param_prefix: str = "",
    resources_param: str | None = None,
    ingestion: IngestionStarter | None = None,
) -> Thread:
    """Create a thread and its initial messages in one transaction; ``param_prefix`` is where
    the thread sits in the request body (``thread.`` in create-and-run), for error params, and
    ``resources_param`` where its ``tool_resources`` came from if elsewhere.
    Files the messages attach for file_search then go into the thread's vector store."""
    check_attachments(repo, tenant, params.messages, param=f"{param_prefix}messages")
    thread = Thread(
        id=new_id("thread"),
        created_at=now(),
        tool_resources=tool_resources.resolve(
            repo, ingestion, tenant, params.tool_resources, param=resources_param or f"{param_prefix}tool_resources"
        ),
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
    index_attachments(repo, ingestion, tenant, thread.id, params.messages)
    return get_thread(repo, tenant, thread.id) if params.messages and _has_search_files(params) else thread


def _has_search_files(params: ThreadCreateParams) -> bool:
    return any(tool.type == "file_search" for m in params.messages for a in m.attachments or [] for tool in a.tools)


def get_thread(repo: Repository, tenant: str, thread_id: str) -> Thread:
    doc = repo.get_doc(thread_pk(tenant, thread_id), THREAD_SK)
    if doc is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    return Thread.model_validate(doc)


def update_thread(
    repo: Repository,
    tenant: str,
    thread_id: str,
    params: ThreadUpdateParams,
    *,
    ingestion: IngestionStarter | None = None,
) -> Thread:
    changes = params.changes()
    if "tool_resources" in changes:
        get_thread(repo, tenant, thread_id)  # a 404 before any store is created for it
        changes["tool_resources"] = tool_resources.resolve(repo, ingestion, tenant, params.tool_resources)
    doc = repo.mutate(thread_pk(tenant, thread_id), THREAD_SK, lambda current: {**current, **changes})
    if doc is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    return Thread.model_validate(doc)


def delete_thread(repo: Repository, tenant: str, thread_id: str, sandbox: Sandbox | None = None) -> DeletedObject:
    """Delete the thread, everything in it, and its code interpreter session."""
    pk = thread_pk(tenant, thread_id)
    session = code_sessions.recorded(repo, tenant, thread_id)
    if not repo.delete(pk, THREAD_SK):
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    repo.delete_partition(pk)
    if session is not None:
        (sandbox or Sandbox()).stop(session.id)
    return DeletedObject(id=thread_id, object="thread.deleted")
