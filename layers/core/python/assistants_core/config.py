"""Settings read from the environment that `template.yaml` (or the local stack) provides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from botocore.config import Config


@dataclass(frozen=True)
class Settings:
    table_name: str
    state_machine_arn: str
    run_expiry_seconds: int
    stream_poll_interval_ms: int
    stream_delta_poll_interval_ms: int
    stream_poll_max_interval_ms: int
    stream_keepalive_seconds: float
    delta_flush_interval_ms: int
    files_bucket: str
    vector_bucket: str
    vector_index: str
    embedding_model: str
    embedding_dimensions: int
    ingest_state_machine_arn: str
    file_search_wait_seconds: int
    rate_limit_requests_per_second: float = 0.0
    rate_limit_burst: int = 0
    rate_limit_concurrent_runs: int = 0
    idempotency_ttl_seconds: int = 86400
    model_timeout_seconds: float = 300.0
    model_retries: int = 0


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings(
        table_name=os.environ.get("TABLE_NAME", "serverless-assistants"),
        state_machine_arn=os.environ.get("STATE_MACHINE_ARN", ""),
        run_expiry_seconds=int(os.environ.get("RUN_EXPIRY_SECONDS", "600")),
        stream_poll_interval_ms=int(os.environ.get("STREAM_POLL_INTERVAL_MS", "20")),
        stream_delta_poll_interval_ms=int(os.environ.get("STREAM_DELTA_POLL_INTERVAL_MS", "33")),
        stream_poll_max_interval_ms=int(os.environ.get("STREAM_POLL_MAX_INTERVAL_MS", "250")),
        stream_keepalive_seconds=float(os.environ.get("STREAM_KEEPALIVE_SECONDS", "10")),
        delta_flush_interval_ms=int(os.environ.get("DELTA_FLUSH_INTERVAL_MS", "100")),
        files_bucket=os.environ.get("FILES_BUCKET", ""),
        vector_bucket=os.environ.get("VECTOR_BUCKET", ""),
        vector_index=os.environ.get("VECTOR_INDEX", ""),
        embedding_model=os.environ.get("EMBEDDING_MODEL", "bedrock/amazon.titan-embed-text-v2:0"),
        embedding_dimensions=int(os.environ.get("EMBEDDING_DIMENSIONS", "1024")),
        ingest_state_machine_arn=os.environ.get("INGEST_STATE_MACHINE_ARN", ""),
        file_search_wait_seconds=int(os.environ.get("FILE_SEARCH_WAIT_SECONDS", "60")),
        # 0 (or unset) turns a limit off; see services/rate_limits.py.
        rate_limit_requests_per_second=float(os.environ.get("RATE_LIMIT_REQUESTS_PER_SECOND") or 0),
        rate_limit_burst=int(os.environ.get("RATE_LIMIT_BURST") or 0),
        rate_limit_concurrent_runs=int(os.environ.get("RATE_LIMIT_CONCURRENT_RUNS") or 0),
        idempotency_ttl_seconds=int(os.environ.get("IDEMPOTENCY_TTL_SECONDS", "86400")),
        # A hanging provider must fail the turn well within the agent step's 900 s.
        model_timeout_seconds=float(os.environ.get("MODEL_TIMEOUT_SECONDS", "300")),
        model_retries=int(os.environ.get("MODEL_RETRIES", "0")),
    )


@lru_cache(maxsize=1)
def boto_config() -> Config:
    """botocore settings for every AWS client the functions create.

    Client-side parameter validation is off: the services validate every request anyway, and
    on the hot paths (stream polling, event appends) it is a fifth of each call's CPU. The
    pool is larger than botocore's 10 connections because one process can serve many
    concurrent streams (the local stack does; a Lambda environment serves one at a time).
    """
    return Config(parameter_validation=False, max_pool_connections=64)
