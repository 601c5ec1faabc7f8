"""OpenAI's Model object and the list /v1/models returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str  # the provider litellm routes it to: "openai", "bedrock", "anthropic"...


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
