"""``tool_resources`` of assistants, threads and runs, and the files messages attach.

What a request names must exist and be the tenant's: a vector store or file that does not is
a 404 naming the param, never stored. ``file_search.vector_stores`` creates the store it
describes. Files attached to a message for ``file_search`` go into the thread's vector store,
created on demand (it expires seven days after it was last used), as OpenAI did.
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFoundError
from ..repository import THREAD_SK, Repository, thread_pk
from ..types.message import MessageCreateParams
from ..types.tools import ToolResources
from ..types.vector_store import StoreExpiresAfter, VectorStoreCreateParams
from .files import require_files
from .ingestion import IngestionStarter
from .vector_store_files import add_files
from .vector_stores import create_vector_store, load_store

THREAD_STORE_EXPIRY = StoreExpiresAfter(anchor="last_active_at", days=7)


def resolve(
    repo: Repository,
    ingestion: IngestionStarter | None,
    tenant: str,
    resources: ToolResources | None,
    *,
    param: str = "tool_resources",
) -> dict[str, Any] | None:
    """``tool_resources`` as stored: checked, with any ``vector_stores`` created."""
    if resources is None:
        return None
    check(repo, tenant, resources, param=param)
    stored: dict[str, Any] = {}
    if resources.code_interpreter is not None:
        stored["code_interpreter"] = {"file_ids": resources.code_interpreter.file_ids}
    if resources.file_search is not None:
        search = resources.file_search
        store_ids = list(search.vector_store_ids)
        for helper in search.vector_stores or []:
            store = create_vector_store(
                repo,
                ingestion,
                tenant,
                VectorStoreCreateParams(
                    file_ids=helper.file_ids, chunking_strategy=helper.chunking_strategy, metadata=helper.metadata
                ),
            )
            store_ids.append(store.id)
        stored["file_search"] = {"vector_store_ids": store_ids}
    return stored


def check(repo: Repository, tenant: str, resources: ToolResources, *, param: str = "tool_resources") -> None:
    """Every store and file ``resources`` names must exist and be the tenant's: a 404 naming
    the first that is not. Nothing is created."""
    if resources.code_interpreter is not None:
        file_ids = resources.code_interpreter.file_ids
        require_files(repo, tenant, file_ids, param + ".code_interpreter.file_ids[{index}]")
    if resources.file_search is not None:
        search = resources.file_search
        for index, store_id in enumerate(search.vector_store_ids):
            load_store(repo, tenant, store_id, param=f"{param}.file_search.vector_store_ids[{index}]")
        for index, helper in enumerate(search.vector_stores or []):
            if helper.file_ids:
                require_files(
                    repo, tenant, helper.file_ids, f"{param}.file_search.vector_stores[{index}].file_ids" + "[{index}]"
                )


def check_attachments(
    repo: Repository, tenant: str, messages: list[MessageCreateParams], *, param: str | None = None
) -> None:
    """Every attached file must exist: a 404 naming the first that does not, as
    ``attachments[j].file_id`` of one message, or ``<param>[i].attachments[j].file_id`` of a list."""
    for m, message in enumerate(messages):
        for a, attachment in enumerate(message.attachments or []):
            named = f"attachments[{a}].file_id" if param is None else f"{param}[{m}].attachments[{a}].file_id"
            require_files(repo, tenant, [attachment.file_id], named)


def index_attachments(
    repo: Repository,
    ingestion: IngestionStarter | None,
    tenant: str,
    thread_id: str,
    messages: list[MessageCreateParams],
) -> None:
    """Put the files attached for ``file_search`` into the thread's vector store (created on
    demand and recorded in the thread's ``tool_resources``) and start their ingestion."""
    file_ids = list(
        dict.fromkeys(
            attachment.file_id
            for message in messages
            for attachment in message.attachments or []
            if any(tool.type == "file_search" for tool in attachment.tools)
        )
    )
    if not file_ids:
        return
    store_id = _thread_store(repo, tenant, thread_id)
    from ..types.vector_store import VectorStoreFileCreateParams

    add_files(repo, ingestion, tenant, store_id, [VectorStoreFileCreateParams(file_id=file_id) for file_id in file_ids])


def _thread_store(repo: Repository, tenant: str, thread_id: str) -> str:
    """The thread's vector store: the one its tool_resources name, else a new one."""
    pk = thread_pk(tenant, thread_id)
    doc = repo.get_doc(pk, THREAD_SK)
    if doc is None:
        raise NotFoundError.for_object("thread", thread_id, param="thread_id")
    named = ((doc.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or []
    if named:
        try:
            record = load_store(repo, tenant, named[0])
            if not record.expired:
                return str(named[0])
        except NotFoundError:
            pass  # deleted since: the thread gets a new one
    store = create_vector_store(
        repo, None, tenant, VectorStoreCreateParams(name=f"Files of {thread_id}"), expires_after=THREAD_STORE_EXPIRY
    )

    def record_store(thread: dict[str, Any]) -> dict[str, Any]:
        resources = dict(thread.get("tool_resources") or {})
        resources["file_search"] = {"vector_store_ids": [store.id]}
        return {**thread, "tool_resources": resources}

    repo.mutate(pk, THREAD_SK, record_store)
    return store.id
