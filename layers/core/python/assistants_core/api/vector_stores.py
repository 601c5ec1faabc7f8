"""/v1/vector_stores, their files, file batches and search."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from ..services import file_batches, search, vector_store_files, vector_stores
from ..types import DeletedObject, ListPage
from ..types.vector_store import (
    FileBatch,
    FileBatchCreateParams,
    FileContentPage,
    SearchResult,
    SearchResultContent,
    SearchResultsPage,
    VectorStore,
    VectorStoreCreateParams,
    VectorStoreFile,
    VectorStoreFileCreateParams,
    VectorStoreFileUpdateParams,
    VectorStoreSearchParams,
    VectorStoreUpdateParams,
)
from .app import download_response
from .dependencies import Blobs, Ingestion, Paging, Repo, Tenant

router = APIRouter(prefix="/v1/vector_stores")
StatusFilter = Literal["in_progress", "completed", "failed", "cancelled"]


@router.post("")
def create_vector_store(body: VectorStoreCreateParams, tenant: Tenant, repo: Repo, ingestion: Ingestion) -> VectorStore:
    return vector_stores.create_vector_store(repo, ingestion, tenant, body)


@router.get("")
def list_vector_stores(tenant: Tenant, repo: Repo, paging: Paging) -> ListPage[VectorStore]:
    return vector_stores.list_vector_stores(repo, tenant, paging)


@router.get("/{vector_store_id}")
def get_vector_store(vector_store_id: str, tenant: Tenant, repo: Repo) -> VectorStore:
    return vector_stores.get_vector_store(repo, tenant, vector_store_id)


@router.post("/{vector_store_id}")
def update_vector_store(vector_store_id: str, body: VectorStoreUpdateParams, tenant: Tenant, repo: Repo) -> VectorStore:
    return vector_stores.update_vector_store(repo, tenant, vector_store_id, body)


@router.delete("/{vector_store_id}")
def delete_vector_store(vector_store_id: str, tenant: Tenant, repo: Repo, blobs: Blobs) -> DeletedObject:
    return vector_stores.delete_vector_store(repo, blobs, tenant, vector_store_id)


@router.post("/{vector_store_id}/search")
def search_vector_store(
    vector_store_id: str, body: VectorStoreSearchParams, tenant: Tenant, repo: Repo
) -> SearchResultsPage:
    outcome = search.search_store(repo, tenant, vector_store_id, body)
    return SearchResultsPage(
        search_query=outcome.queries,
        data=[
            SearchResult(
                file_id=hit.file_id,
                filename=hit.file_name,
                score=round(hit.score, 6),
                attributes=hit.attributes,
                content=[SearchResultContent(text=hit.text)],
            )
            for hit in outcome.hits
        ],
    )


# ---------------------------------------------------------------- files of a store


@router.post("/{vector_store_id}/files")
def create_store_file(
    vector_store_id: str, body: VectorStoreFileCreateParams, tenant: Tenant, repo: Repo, ingestion: Ingestion
) -> VectorStoreFile:
    vector_store_files.add_files(repo, ingestion, tenant, vector_store_id, [body], param="file_id")
    return vector_store_files.get_store_file(repo, tenant, vector_store_id, body.file_id)


@router.get("/{vector_store_id}/files")
def list_store_files(
    vector_store_id: str, tenant: Tenant, repo: Repo, paging: Paging, filter: StatusFilter | None = None
) -> ListPage[VectorStoreFile]:
    return vector_store_files.list_store_files(repo, tenant, vector_store_id, paging, status=filter)


@router.get("/{vector_store_id}/files/{file_id}")
def get_store_file(vector_store_id: str, file_id: str, tenant: Tenant, repo: Repo) -> VectorStoreFile:
    return vector_store_files.get_store_file(repo, tenant, vector_store_id, file_id)


@router.post("/{vector_store_id}/files/{file_id}")
def update_store_file(
    vector_store_id: str, file_id: str, body: VectorStoreFileUpdateParams, tenant: Tenant, repo: Repo
) -> VectorStoreFile:
    return vector_store_files.update_attributes(repo, tenant, vector_store_id, file_id, body.attributes)


@router.delete("/{vector_store_id}/files/{file_id}")
def delete_store_file(vector_store_id: str, file_id: str, tenant: Tenant, repo: Repo, blobs: Blobs) -> DeletedObject:
    return vector_store_files.delete_store_file(repo, blobs, tenant, vector_store_id, file_id)


@router.get("/{vector_store_id}/files/{file_id}/content", response_model=FileContentPage)
def store_file_content(vector_store_id: str, file_id: str, tenant: Tenant, repo: Repo, blobs: Blobs) -> Response:
    """The parsed text as one page (its JSON as ingestion stored it)."""
    content = vector_store_files.file_content(repo, blobs, tenant, vector_store_id, file_id)
    return download_response(content, "application/json")


# ---------------------------------------------------------------- file batches


@router.post("/{vector_store_id}/file_batches")
def create_file_batch(
    vector_store_id: str, body: FileBatchCreateParams, tenant: Tenant, repo: Repo, ingestion: Ingestion
) -> FileBatch:
    return file_batches.create_batch(repo, ingestion, tenant, vector_store_id, body)


@router.get("/{vector_store_id}/file_batches/{batch_id}")
def get_file_batch(vector_store_id: str, batch_id: str, tenant: Tenant, repo: Repo) -> FileBatch:
    return file_batches.get_batch(repo, tenant, vector_store_id, batch_id)


@router.post("/{vector_store_id}/file_batches/{batch_id}/cancel")
def cancel_file_batch(vector_store_id: str, batch_id: str, tenant: Tenant, repo: Repo) -> FileBatch:
    return file_batches.cancel_batch(repo, tenant, vector_store_id, batch_id)


@router.get("/{vector_store_id}/file_batches/{batch_id}/files")
def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    tenant: Tenant,
    repo: Repo,
    paging: Paging,
    filter: StatusFilter | None = None,
) -> ListPage[VectorStoreFile]:
    return file_batches.list_batch_files(repo, tenant, vector_store_id, batch_id, paging, filter)
