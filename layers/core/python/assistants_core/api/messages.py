"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from fastapi import APIRouter

from ..services import messages as service
from ..types import DeletedObject, ListPage, Message, MessageCreateParams, MessageUpdateParams
from .dependencies import Paging, Repo, Tenant

router = APIRouter(prefix="/v1/threads/{thread_id}/messages")


@router.post("")
def create_message(thread_id: str, body: MessageCreateParams, tenant: Tenant, repo: Repo) -> Message:
    return service.create_message(repo, tenant, thread_id, body)


@router.get("")
def list_messages(
    thread_id: str, tenant: Tenant, repo: Repo, paging: Paging, run_id: str | None = None
) -> ListPage[Message]:
    return service.list_messages(repo, tenant, thread_id, paging, run_id=run_id)


@router.get("/{message_id}")
def get_message(thread_id: str, message_id: str, tenant: Tenant, repo: Repo) -> Message:
    return service.get_message(repo, tenant, thread_id, message_id)


@router.post("/{message_id}")
def update_message(thread_id: str, message_id: str, body: MessageUpdateParams, tenant: Tenant, repo: Repo) -> Message:
    return service.update_message(repo, tenant, thread_id, message_id, body)


@router.delete("/{message_id}")
def delete_message(thread_id: str, message_id: str, tenant: Tenant, repo: Repo) -> DeletedObject:
    return service.delete_message(repo, tenant, thread_id, message_id)
