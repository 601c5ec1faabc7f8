"""The models a tenant may use: /v1/models, and the check behind every ``model`` param.

A model is available when litellm can route it and the deployment's allow-list
(``ALLOWED_MODELS``) lets it through (:mod:`assistants_core.model_routing`). The list names
the allow-list's concrete names and the available models the tenant's assistants use: with the
default allow-list (``*``) there is no catalogue of every model litellm knows to offer.
"""

from __future__ import annotations

from ..errors import InvalidRequestError, NotFoundError
from ..model_routing import listed_models, route
from ..repository import ASSISTANT_PREFIX, Repository, tenant_pk
from ..types.model import Model, ModelList

_PAGE = 100


def require_available(model: str, param: str = "model") -> None:
    """A 400 in OpenAI's words for a model this deployment cannot route, before anything is stored."""
    if route(model) is None:
        raise InvalidRequestError(f"The requested model '{model}' does not exist.", param=param, code="model_not_found")


def list_models(repo: Repository, tenant: str) -> ModelList:
    used = _used_by_assistants(repo, tenant)
    names = sorted(set(listed_models()) | {name for name in used if route(name) is not None})
    return ModelList(data=[_model(name, used) for name in names])


def retrieve_model(repo: Repository, tenant: str, model: str) -> Model:
    if route(model) is None:
        raise NotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
        )
    return _model(model, _used_by_assistants(repo, tenant))


def _model(name: str, used: dict[str, int]) -> Model:
    """``created``: when the tenant's first assistant with this model was created (0 if none is)."""
    return Model(id=name, created=used.get(name, 0), owned_by=route(name) or "")


def _used_by_assistants(repo: Repository, tenant: str) -> dict[str, int]:
    """Each model the tenant's assistants use, with the earliest such assistant's ``created_at``."""
    used: dict[str, int] = {}
    after = None
    while True:
        page = repo.list(tenant_pk(tenant), ASSISTANT_PREFIX, limit=_PAGE, order="asc", after=after)
        for doc in page.items:
            name, created = str(doc.get("model", "")), int(doc.get("created_at", 0))
            used[name] = min(used.get(name, created), created)
        if not page.has_more or not page.items:
            return used
        after = str(page.items[-1]["id"])
