"""/v1/models"""

from __future__ import annotations

from fastapi import APIRouter

from ..services import models as service
from ..types.model import Model, ModelList
from .dependencies import Repo, Tenant

router = APIRouter(prefix="/v1/models")


@router.get("")
def list_models(tenant: Tenant, repo: Repo) -> ModelList:
    return service.list_models(repo, tenant)


@router.get("/{model:path}")
def retrieve_model(model: str, tenant: Tenant, repo: Repo) -> Model:
    # Ids have slashes (openai/gpt-4o), which the SDK sends encoded (openai%2Fgpt-4o): API
    # Gateway's {model+} and this route are greedy, and mangum (uvicorn locally) decodes the path.
    return service.retrieve_model(repo, tenant, model)
