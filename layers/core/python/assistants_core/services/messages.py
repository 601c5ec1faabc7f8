"""Messages: create, read, update, delete and list, honouring the thread's run lock."""

from __future__ import annotations

from ..errors import ConflictError, NotFoundError, too_large
from ..ids import new_id, now
from ..repository import MESSAGE_PREFIX, THREAD_SK, ItemTooLarge, Repository, TransactionConflict, thread_pk
from ..types import DeletedObject, ListPage, Message, MessageCreateParams, MessageUpdateParams
from ..types.message import content_parts
from .ingestion import IngestionStarter
from .pagination import ListParams, to_list_page
from .thread_state import active_run, require_thread


def message_sk(message_id: str) -> str:
    return MESSAGE_PREFIX + message_id


def build_message(
    thread_id: str,
    params: MessageCreateParams,
    *,
    run_id: str | None = None,
    assistant_id: str | None = None,
) -> Message:
    created_at = now()
    return Message(
        id=new_id("msg"),
        created_at=created_at,
        thread_id=thread_id,
        status="completed",
        completed_at=created_at,
        role=params.role,
        content=content_parts(params.content),
        attachments=[a.model_dump() for a in params.attachments] if params.attachments is not None else None,
        metadata=params.metadata or {},
        run_id=run_id,
        assistant_id=assistant_id,
    )


def create_message(
    repo: Repository,
    tenant: str,
    thread_id: str,
    params: MessageCreateParams,
    *,
    ingestion: IngestionStarter | None = None,
) -> Message:
    """Add a message unless a run holds the thread; files it attaches for file_search then go
    into the thread's vector store."""
    from .tool_resources import check_attachments, index_attachments

    check_attachments(repo, tenant, [params])
    message = build_message(thread_id, params)
    pk = thread_pk(tenant, thread_id)
    operations = [
        repo.op_condition(pk, THREAD_SK, "attribute_exists(PK) AND attribute_not_exists(active_run_id)"),
        repo.op_put(pk, message_sk(message.id), message.model_dump(mode="json")),
    ]
    for attempt in range(3):
        try:
            repo.transact(operations)
            break
        except TransactionConflict:
            active = active_run(repo, tenant, thread_id)
            if active:
                raise ConflictError(f"Can't add messages to {thread_id} while a run {active} is active.") from None
            if attempt == 2:
                raise
            # The run ended between the write and the read: the thread is free now.
        except ItemTooLarge:
            raise too_large("The message", "content") from None
    index_attachments(repo, ingestion, tenant, thread_id, [params])
    return message


def get_message(repo: Repository, tenant: str, thread_id: str, message_id: str) -> Message:
    doc = repo.get_doc(thread_pk(tenant, thread_id), message_sk(message_id))
    if doc is None:
        require_thread(repo, tenant, thread_id)
        raise NotFoundError.for_object("message", message_id, param="message_id")
    return Message.model_validate(doc)


def update_message(
    repo: Repository, tenant: str, thread_id: str, message_id: str, params: MessageUpdateParams
) -> Message:
    changes = params.changes()
    doc = repo.mutate(thread_pk(tenant, thread_id), message_sk(message_id), lambda m: {**m, **changes})
    if doc is None:
        require_thread(repo, tenant, thread_id)
        raise NotFoundError.for_object("message", message_id, param="message_id")
    return Message.model_validate(doc)


def delete_message(repo: Repository, tenant: str, thread_id: str, message_id: str) -> DeletedObject:
    if not repo.delete(thread_pk(tenant, thread_id), message_sk(message_id)):
        require_thread(repo, tenant, thread_id)
        raise NotFoundError.for_object("message", message_id, param="message_id")
    return DeletedObject(id=message_id, object="thread.message.deleted")


def list_messages(
    repo: Repository, tenant: str, thread_id: str, params: ListParams, run_id: str | None = None
) -> ListPage[Message]:
    require_thread(repo, tenant, thread_id)
    page = repo.list(
        thread_pk(tenant, thread_id),
        MESSAGE_PREFIX,
        **params.query(),
        where={"run_id": run_id} if run_id else None,
    )
    return to_list_page(page, Message)
