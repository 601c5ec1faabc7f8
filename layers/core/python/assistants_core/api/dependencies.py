"""FastAPI dependencies shared by the routers.

They are ``async`` because none of them blocks: FastAPI runs a plain ``def`` dependency in a
worker thread, a hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from ..blobs import BlobStore, default_blob_store
from ..repository import Repository, default_repository
from ..services.ingestion import IngestionStarter, default_ingestion
from ..services.pagination import ListParams
from ..services.rate_limits import Caller
from .auth import caller, tenant_id


async def list_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    before: str | None = None,
) -> ListParams:
    return ListParams(limit=limit, order=order, after=after, before=before)


async def repository() -> Repository:
    return default_repository()


Tenant = Annotated[str, Depends(tenant_id)]
# The API key a request counts against (its rate limits).
ApiKey = Annotated[Caller | None, Depends(caller)]
Repo = Annotated[Repository, Depends(repository)]
Paging = Annotated[ListParams, Depends(list_params)]


async def blob_store() -> BlobStore:
    return default_blob_store()


async def ingestion() -> IngestionStarter:
    return default_ingestion()


Blobs = Annotated[BlobStore, Depends(blob_store)]
Ingestion = Annotated[IngestionStarter, Depends(ingestion)]
