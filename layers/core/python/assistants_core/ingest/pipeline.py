"""Ingesting one file into one vector store: text, chunks, vectors, and the file's status.

Called by the ingest function for each file of an ingest execution. What a retry must not do
twice it cannot: chunk keys are deterministic (a rewrite overwrites), the chunk count is
recorded before the first vector is written (removal always knows every key), and the status
moves to ``completed`` in one transaction with the store's counters, conditioned on the item
not having changed since it was read. If it did change:

- the file was removed, or its batch cancelled: what this run wrote is deleted again;
- its attributes changed: the chunks get the new ones, and the completion is tried again.

Failures the file causes (a type we cannot parse, a broken PDF) end it ``failed`` with
``unsupported_file`` or ``invalid_file``; anything else raises, and the state machine retries
the file and finally marks it failed with ``server_error``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger

from ..blobs import BlobStore, file_key, store_content_key
from ..embeddings import embedder_for
from ..repository import ConcurrentModification, Repository, tenant_pk, vector_store_pk
from ..services.file_batches import is_cancelled
from ..services.files import file_sk
from ..services.vector_store_files import (
    content_page,
    mark_failed,
    release_chunks,
    set_status,
    store_file_sk,
    write_chunk_attributes,
)
from ..services.vector_stores import StoreRecord, load_store
from ..types.file import FileObject
from ..types.vector_store import AUTO_CHUNK_TOKENS, AUTO_OVERLAP_TOKENS, StoreFileErrorCode, VectorStoreFile
from ..vectors import ChunkRecord, index_named
from ..vectors.layout import MAX_TEXT_BYTES
from .chunking import chunk_text, within_bytes
from .extract import ExtractionError, extract_text

logger = Logger()
EMBED_WORKERS = 4  # embedding calls in flight at once (a hosted model takes one batch a call)
# OpenAI searched files of up to 5,000,000 tokens; about four characters a token. Beyond, the
# file fails at once rather than after an hour of retries that run out of memory or time.
MAX_TEXT_CHARACTERS = 20_000_000
FLOAT_BYTES = 4


def ingest_file(repo: Repository, blobs: BlobStore, tenant: str, vector_store_id: str, file_id: str) -> dict[str, Any]:
    """Ingest a file that is ``in_progress`` in a store; returns what happened, for the logs."""
    started = time.monotonic()
    pk = vector_store_pk(tenant, vector_store_id)
    stored = repo.get(pk, store_file_sk(file_id))
    if stored is None or stored.doc.get("status") != "in_progress":
        return {"status": "skipped", "reason": "removed or no longer in progress"}
    batch_id = stored.attributes.get("batch_id")
    if batch_id and is_cancelled(repo, tenant, vector_store_id, str(batch_id)):
        set_status(repo, tenant, vector_store_id, file_id, "cancelled")  # the cancel did not reach it
        return {"status": "cancelled", "reason": "its batch was cancelled"}
    record = load_store(repo, tenant, vector_store_id)
    if record.expired:
        set_status(repo, tenant, vector_store_id, file_id, "cancelled")
        return {"status": "cancelled", "reason": "its vector store expired"}
    file_doc = repo.get_doc(tenant_pk(tenant), file_sk(file_id))
    if file_doc is None:
        return _failed(repo, tenant, vector_store_id, file_id, "invalid_file", "The file was deleted.")
    file = FileObject.model_validate(file_doc)
    item = VectorStoreFile.model_validate(stored.doc)
    try:
        text = extract_text(blobs.get(file_key(tenant, file_id)), file.filename)
    except ExtractionError as error:
        return _failed(repo, tenant, vector_store_id, file_id, error.code, error.message)
    if len(text) > MAX_TEXT_CHARACTERS:
        return _failed(
            repo,
            tenant,
            vector_store_id,
            file_id,
            "invalid_file",
            f"The file holds {len(text):,} characters of text; a file may hold at most {MAX_TEXT_CHARACTERS:,} "
            "(about 5,000,000 tokens) to be searched. Split it into smaller files.",
        )
    static = (item.chunking_strategy or {}).get("static") or {}
    chunks = within_bytes(
        chunk_text(
            text,
            max_tokens=int(static.get("max_chunk_size_tokens", AUTO_CHUNK_TOKENS)),
            overlap_tokens=int(static.get("chunk_overlap_tokens", AUTO_OVERLAP_TOKENS)),
        ),
        MAX_TEXT_BYTES,
    )
    if not chunks:
        return _failed(repo, tenant, vector_store_id, file_id, "invalid_file", "The file contains no text.")
    # Before the first vector: removal must know every key this run may write.
    try:
        repo.update_attributes(
            pk, store_file_sk(file_id), set_values={"chunk_count": len(chunks)}, condition=_still_in_progress()
        )
    except ConcurrentModification:
        return {"status": "skipped", "reason": "removed or cancelled before indexing"}
    blobs.put(store_content_key(tenant, vector_store_id, file_id), content_page(text), content_type="application/json")
    vectors = _embed(record, [chunk.text for chunk in chunks])
    index = index_named(record.index)
    index.text_search_ready(enable=True)
    attributes = item.attributes or {}
    index.put(
        ChunkRecord(
            tenant=tenant,
            vector_store_id=vector_store_id,
            file_id=file_id,
            chunk=chunk.index,
            file_name=file.filename,
            text=chunk.text,
            vector=vector,
            attributes=attributes,
        )
        for chunk, vector in zip(chunks, vectors, strict=True)
    )
    usage = sum(len(chunk.text.encode()) + record.embedding_dimensions * FLOAT_BYTES for chunk in chunks)
    outcome = _complete(repo, blobs, tenant, record, vector_store_id, file_id, len(chunks), usage, attributes)
    logger.info(
        "ingested a file",
        extra={
            "vector_store_id": vector_store_id,
            "file_id": file_id,
            "status": outcome,
            "bytes": file.bytes,
            "chunks": len(chunks),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return {"status": outcome, "chunks": len(chunks)}


def _still_in_progress() -> Any:
    from boto3.dynamodb.conditions import Attr

    return Attr("status").eq("in_progress")


def _embed(record: StoreRecord, texts: list[str]) -> list[list[float]]:
    """Embed in the model's batches, a few batches at once, keeping the order."""
    embedder = embedder_for(record.embedding_model, record.embedding_dimensions)
    batches = [texts[i : i + embedder.batch_size] for i in range(0, len(texts), embedder.batch_size)]
    if len(batches) == 1:
        return embedder.embed_documents(batches[0])
    with ThreadPoolExecutor(max_workers=EMBED_WORKERS, thread_name_prefix="embed") as pool:
        return [vector for batch in pool.map(embedder.embed_documents, batches) for vector in batch]


def _complete(
    repo: Repository,
    blobs: BlobStore,
    tenant: str,
    record: StoreRecord,
    vector_store_id: str,
    file_id: str,
    chunk_count: int,
    usage: int,
    written_attributes: dict[str, Any],
) -> str:
    pk = vector_store_pk(tenant, vector_store_id)
    for _ in range(5):
        stored = repo.get(pk, store_file_sk(file_id))
        if stored is None or stored.doc.get("status") != "in_progress":
            # Removed or cancelled while this run indexed: take back what it wrote.
            release_chunks(blobs, tenant, record, vector_store_id, file_id, chunk_count)
            return "discarded"
        if load_store(repo, tenant, vector_store_id).expired:
            # The expiry sweep released the store's chunks while this run indexed: these too.
            release_chunks(blobs, tenant, record, vector_store_id, file_id, chunk_count)
            try:
                set_status(repo, tenant, vector_store_id, file_id, "cancelled", stored=stored)
            except ConcurrentModification:
                continue
            return "cancelled"
        attributes = stored.doc.get("attributes") or {}
        if attributes != written_attributes:
            write_chunk_attributes(record, vector_store_id, file_id, chunk_count, attributes)
            written_attributes = attributes
        try:
            done = set_status(repo, tenant, vector_store_id, file_id, "completed", usage_bytes=usage, stored=stored)
        except ConcurrentModification:
            continue  # changed since it was read: look again
        if done is not None:
            return "completed"
    raise ConcurrentModification(f"vector store file {file_id}: could not complete")


def _failed(
    repo: Repository, tenant: str, vector_store_id: str, file_id: str, code: StoreFileErrorCode, message: str
) -> dict[str, Any]:
    logger.warning(
        "could not ingest a file", extra={"vector_store_id": vector_store_id, "file_id": file_id, "code": code}
    )
    mark_failed(repo, tenant, vector_store_id, file_id, code, message)
    return {"status": "failed", "code": code}


def fail_file(repo: Repository, tenant: str, vector_store_id: str, file_id: str, cause: str) -> dict[str, Any]:
    """The state machine gave up on a file (retries ran out, or the function timed out)."""
    logger.error("ingestion failed", extra={"vector_store_id": vector_store_id, "file_id": file_id, "cause": cause})
    message = "The file could not be processed; add it again to retry."
    done = mark_failed(repo, tenant, vector_store_id, file_id, "server_error", message)
    return {"status": "failed" if done else "unchanged"}
