"""List parameters shared by every paginated endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from ..repository import Page
from ..types import ListPage


@dataclass(frozen=True)
class ListParams:
    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None

    def query(self) -> dict[str, Any]:
        return {"limit": self.limit, "order": self.order, "after": self.after, "before": self.before}


def to_list_page[Model: BaseModel](page: Page, model: type[Model]) -> ListPage[Model]:
    data = [model.model_validate(doc) for doc in page.items]
    return ListPage[model](  # type: ignore[valid-type]
        data=data,
        first_id=data[0].id if data else None,  # type: ignore[attr-defined]
        last_id=data[-1].id if data else None,  # type: ignore[attr-defined]
        has_more=page.has_more,
    )
