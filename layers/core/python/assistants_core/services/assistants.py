"""Assistants: create, read, update, delete, list."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..errors import NotFoundError
from ..ids import new_id, now
from ..repository import ASSISTANT_PREFIX, Repository, tenant_pk
from ..types import Assistant, AssistantCreateParams, AssistantUpdateParams, DeletedObject, ListPage
from . import tool_resources
from .ingestion import IngestionStarter
from .models import require_available
from .pagination import ListParams, to_list_page


def _sk(assistant_id: str) -> str:
    return ASSISTANT_PREFIX + assistant_id


def create_assistant(
    repo: Repository, tenant: str, params: AssistantCreateParams, *, ingestion: IngestionStarter | None = None
) -> Assistant:
    require_available(params.model)
    assistant = Assistant(
        id=new_id("asst"),
        created_at=now(),
        **params.model_dump(mode="json", exclude_none=True, by_alias=True, exclude={"tool_resources"}),
        tool_resources=tool_resources.resolve(repo, ingestion, tenant, params.tool_resources),
    )
    repo.create(tenant_pk(tenant), _sk(assistant.id), assistant.model_dump(mode="json"))
    return assistant


def get_assistant(repo: Repository, tenant: str, assistant_id: str) -> Assistant:
    doc = repo.get_doc(tenant_pk(tenant), _sk(assistant_id))
    if doc is None:
        raise NotFoundError.for_object("assistant", assistant_id, param="assistant_id")
    return Assistant.model_validate(doc)


# The assistants new runs copied lately, with the version read: (tenant, id) -> (assistant, version).
_RUN_CACHE: OrderedDict[tuple[str, str], tuple[Assistant, int]] = OrderedDict()
_RUN_CACHE_SIZE = 128
_run_cache_lock = threading.Lock()  # one process serves several requests at once (the local stack)


def assistant_for_run(repo: Repository, tenant: str, assistant_id: str) -> tuple[Assistant, dict[str, Any]]:
    """The assistant a new run copies, and the transaction check that it is still the version
    copied: the run's own transaction carries it, so a cached copy costs no read of its own.

    An update (every write bumps the version) or a delete since fails the check; the caller then
    calls :func:`forget_assistant` and asks again, which reads it (or answers 404).
    """
    key = (tenant, assistant_id)
    with _run_cache_lock:
        cached = _RUN_CACHE.get(key)
        if cached is not None:
            _RUN_CACHE.move_to_end(key)
    if cached is None:
        stored = repo.get(tenant_pk(tenant), _sk(assistant_id))
        if stored is None:
            raise NotFoundError.for_object("assistant", assistant_id, param="assistant_id")
        cached = (Assistant.model_validate(stored.doc), stored.version)
        with _run_cache_lock:
            _RUN_CACHE[key] = cached
            while len(_RUN_CACHE) > _RUN_CACHE_SIZE:
                _RUN_CACHE.popitem(last=False)
    assistant, version = cached
    check = repo.op_condition(
        tenant_pk(tenant), _sk(assistant_id), "#version = :version", {":version": version}, {"#version": "version"}
    )
    return assistant.model_copy(deep=True), check  # a copy: the caller may change what it copies


def forget_assistant(tenant: str, assistant_id: str) -> None:
    """Drop a cached assistant whose check failed (see :func:`assistant_for_run`)."""
    with _run_cache_lock:
        _RUN_CACHE.pop((tenant, assistant_id), None)


def update_assistant(
    repo: Repository,
    tenant: str,
    assistant_id: str,
    params: AssistantUpdateParams,
    *,
    ingestion: IngestionStarter | None = None,
) -> Assistant:
    changes = params.changes()
    if changes.get("model") is not None:
        require_available(changes["model"])
    if "tool_resources" in changes:
        get_assistant(repo, tenant, assistant_id)  # a 404 before any store is created for it
        changes["tool_resources"] = tool_resources.resolve(repo, ingestion, tenant, params.tool_resources)
    if changes.get("model", "") is None:
        del changes["model"]
    if "tools" in changes and changes["tools"] is None:
        changes["tools"] = []
    doc = repo.mutate(tenant_pk(tenant), _sk(assistant_id), lambda current: {**current, **changes})
    if doc is None:
        raise NotFoundError.for_object("assistant", assistant_id, param="assistant_id")
    return Assistant.model_validate(doc)


def delete_assistant(repo: Repository, tenant: str, assistant_id: str) -> DeletedObject:
    if not repo.delete(tenant_pk(tenant), _sk(assistant_id)):
        raise NotFoundError.for_object("assistant", assistant_id, param="assistant_id")
    return DeletedObject(id=assistant_id, object="assistant.deleted")


def list_assistants(repo: Repository, tenant: str, params: ListParams) -> ListPage[Assistant]:
    return to_list_page(repo.list(tenant_pk(tenant), ASSISTANT_PREFIX, **params.query()), Assistant)
