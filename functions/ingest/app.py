"""Step Functions task: ingest one file into one vector store (the ingest state machine's Map).

``{tenant, vector_store_id, file_id}`` ingests the file; ``{"action": "fail", ..., "error"}``
marks it failed when the state machine's retries ran out.
"""

from typing import Any

from aws_lambda_powertools import Logger

from assistants_core.blobs import default_blob_store
from assistants_core.ingest.pipeline import fail_file, ingest_file
from assistants_core.repository import default_repository

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(vector_store_id=event["vector_store_id"], file_id=event["file_id"])
    tenant, store_id, file_id = event["tenant"], event["vector_store_id"], event["file_id"]
    if event.get("action") == "fail":
        cause = (event.get("error") or {}).get("Cause") or "ingestion failed"
        return fail_file(default_repository(), tenant, store_id, file_id, str(cause)[:2000])
    return ingest_file(default_repository(), default_blob_store(), tenant, store_id, file_id)
