"""/v1/threads"""

from __future__ import annotations

from fastapi import APIRouter

from ..services import threads as service
from ..types import DeletedObject, Thread, ThreadCreateParams, ThreadUpdateParams
from .dependencies import Repo, Tenant

router = APIRouter(prefix="/v1/threads")


@router.post("")
def create_thread(tenant: Tenant, repo: Repo, body: ThreadCreateParams | None = None) -> Thread:
    return service.create_thread(repo, tenant, body or ThreadCreateParams())


@router.get("/{thread_id}")
def get_thread(thread_id: str, tenant: Tenant, repo: Repo) -> Thread:
    return service.get_thread(repo, tenant, thread_id)


@router.post("/{thread_id}")
def update_thread(thread_id: str, body: ThreadUpdateParams, tenant: Tenant, repo: Repo) -> Thread:
    return service.update_thread(repo, tenant, thread_id, body)


@router.delete("/{thread_id}")
def delete_thread(thread_id: str, tenant: Tenant, repo: Repo) -> DeletedObject:
    return service.delete_thread(repo, tenant, thread_id)
