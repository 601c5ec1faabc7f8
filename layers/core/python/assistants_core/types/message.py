"""The message object, its content parts, and its create/update parameters.

Content arrives as a string or a list of input parts and is always stored and returned as
output parts (``{"type": "text", "text": {"value", "annotations"}}``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import Metadata, ObjectModel, RequestModel

ImageDetail = Literal["auto", "low", "high"]


class ImageURL(RequestModel):
    url: Annotated[str, Field(min_length=1)]
    detail: ImageDetail | None = None


class ImageFile(RequestModel):
    file_id: Annotated[str, Field(min_length=1)]
    detail: ImageDetail | None = None


class TextInputPart(RequestModel):
    type: Literal["text"]
    text: str


class ImageURLPart(RequestModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ImageFilePart(RequestModel):
    type: Literal["image_file"]
    image_file: ImageFile


InputPart = Annotated[TextInputPart | ImageURLPart | ImageFilePart, Field(discriminator="type")]


class AttachmentTool(RequestModel):
    type: Literal["code_interpreter", "file_search"]


class Attachment(RequestModel):
    file_id: Annotated[str, Field(min_length=1)]
    tools: list[AttachmentTool] = []


class MessageCreateParams(RequestModel):
    role: Literal["user", "assistant"]
    content: str | Annotated[list[InputPart], Field(min_length=1)]
    attachments: list[Attachment] | None = None
    metadata: Metadata = None


class MessageUpdateParams(RequestModel):
    metadata: Metadata = None


def text_part(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def content_parts(content: str | list[Any]) -> list[dict[str, Any]]:
    """Input content (a string or input parts) as the output parts that are stored."""
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextInputPart):
            parts.append(text_part(part.text))
        else:
            parts.append(part.model_dump(exclude_none=True))
    return parts


class Message(ObjectModel):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"] = "completed"
    incomplete_details: dict[str, Any] | None = None
    completed_at: int | None = None
    incomplete_at: int | None = None
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, str] = {}

    def text(self) -> str:
        return "".join(p["text"]["value"] for p in self.content if p.get("type") == "text")
