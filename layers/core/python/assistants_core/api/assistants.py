"""/v1/assistants"""

from __future__ import annotations

from fastapi import APIRouter

from ..services import assistants as service
from ..types import Assistant, AssistantCreateParams, AssistantUpdateParams, DeletedObject, ListPage
from .dependencies import Paging, Repo, Tenant

router = APIRouter(prefix="/v1/assistants")


@router.post("")
def create_assistant(body: AssistantCreateParams, tenant: Tenant, repo: Repo) -> Assistant:
    return service.create_assistant(repo, tenant, body)


@router.get("")
def list_assistants(tenant: Tenant, repo: Repo, paging: Paging) -> ListPage[Assistant]:
    return service.list_assistants(repo, tenant, paging)


@router.get("/{assistant_id}")
def get_assistant(assistant_id: str, tenant: Tenant, repo: Repo) -> Assistant:
    return service.get_assistant(repo, tenant, assistant_id)


@router.post("/{assistant_id}")
def update_assistant(assistant_id: str, body: AssistantUpdateParams, tenant: Tenant, repo: Repo) -> Assistant:
    return service.update_assistant(repo, tenant, assistant_id, body)


@router.delete("/{assistant_id}")
def delete_assistant(assistant_id: str, tenant: Tenant, repo: Repo) -> DeletedObject:
    return service.delete_assistant(repo, tenant, assistant_id)
