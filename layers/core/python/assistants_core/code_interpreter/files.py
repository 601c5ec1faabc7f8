"""Files in and out of the code interpreter's ``/mnt/data``.

In: the files of ``tool_resources.code_interpreter`` on the assistant and on the thread, and
the files the thread's messages attach for code_interpreter, each under its own name (a
second file of the same name gets its id added). Out: what the code writes becomes a File
object with purpose ``assistants_output``, readable through ``GET /v1/files/{id}/content``.
"""

from __future__ import annotations

import mimetypes
import os
import re
from typing import Any

from ..blobs import BlobStore
from ..repository import ASSISTANT_PREFIX, Repository, tenant_pk
from ..services.files import create_file, file_sk
from ..types import Message
from ..types.file import FileObject
from .sandbox import OutputFile

DATA_DIR = "/mnt/data"
OUTPUT_PURPOSE = "assistants_output"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def requested_file_ids(
    assistant: dict[str, Any] | None, thread: dict[str, Any] | None, messages: list[Message]
) -> list[str]:
    """Every file the run's code may read, in order: the assistant's, the thread's, attachments'."""
    ids: list[str] = []
    for source in (assistant or {}, thread or {}):
        ids += ((source.get("tool_resources") or {}).get("code_interpreter") or {}).get("file_ids") or []
    for message in messages:
        for attachment in message.attachments or []:
            if any(tool.get("type") == "code_interpreter" for tool in attachment.get("tools") or []):
                ids.append(str(attachment["file_id"]))
    return list(dict.fromkeys(ids))


def available_files(
    repo: Repository, tenant: str, assistant_id: str, thread: dict[str, Any] | None, messages: list[Message]
) -> dict[str, str]:
    """File id -> its path under /mnt/data, for the files that still exist and that AgentCore
    takes inline (``CODE_INTERPRETER_INPUT_BYTES``, 100 MB: a larger one is left out)."""
    largest = int(os.environ.get("CODE_INTERPRETER_INPUT_BYTES", str(100 * 1000 * 1000)))
    assistant = repo.get_doc(tenant_pk(tenant), ASSISTANT_PREFIX + assistant_id)
    ids = requested_file_ids(assistant, thread, messages)
    if not ids:
        return {}
    found = repo.get_many([(tenant_pk(tenant), file_sk(file_id)) for file_id in ids])
    paths: dict[str, str] = {}
    taken: set[str] = set()
    for file_id in ids:
        stored = found.get((tenant_pk(tenant), file_sk(file_id)))
        if stored is None:
            continue  # deleted since it was named: the run goes on without it
        file = FileObject.model_validate(stored.doc)
        if file.bytes > largest:
            continue
        name = safe_name(file.filename, file_id)
        if name in taken:
            stem, extension = os.path.splitext(name)
            name = f"{stem}-{file_id}{extension}"
        taken.add(name)
        paths[file_id] = name
    return paths


def safe_name(filename: str, file_id: str) -> str:
    name = _UNSAFE.sub("_", os.path.basename(filename.replace("\\", "/"))).strip(" .")
    return name or file_id


def model_path(relative: str) -> str:
    return f"{DATA_DIR}/{relative}"


def link_annotations(text: str, written: dict[str, str]) -> list[dict[str, Any]]:
    """A ``file_path`` annotation on each ``sandbox:/mnt/data/<name>`` link to a file the code
    wrote (``written``: its /mnt/data path -> file id), as OpenAI's answers carried them."""
    annotations: list[dict[str, Any]] = []
    for path, file_id in written.items():
        link = "sandbox:" + path
        start = text.find(link)
        while start >= 0:
            end = start + len(link)
            if not _continues_name(text, end):  # a longer name (a.csv.bak), not this file
                annotations.append(
                    {
                        "type": "file_path",
                        "text": link,
                        "start_index": start,
                        "end_index": end,
                        "file_path": {"file_id": file_id},
                    }
                )
            start = text.find(link, end)
    return annotations


def _continues_name(text: str, at: int) -> bool:
    """Whether a path goes on at ``at``; a full stop that ends the sentence does not."""
    following = text[at : at + 2]
    if not following:
        return False
    if following[0] == ".":
        return len(following) > 1 and (following[1].isalnum() or following[1] in "_-")
    return following[0].isalnum() or following[0] in "_-/"


def store_output(repo: Repository, blobs: BlobStore, tenant: str, output: OutputFile) -> FileObject:
    """Keep a file the code wrote as the tenant's File object."""
    content_type = output.image_type or mimetypes.guess_type(output.name)[0] or "application/octet-stream"
    return create_file(
        repo,
        blobs,
        tenant,
        filename=output.name,
        data=output.data,
        purpose=OUTPUT_PURPOSE,
        content_type=content_type,
    )
