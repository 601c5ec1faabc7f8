"""Scheduled task: release the files and vector stores that expired (see services/expiry.py).

The schedule's event may carry ``{"until": <unix time>}`` to sweep up to another moment than
now (what was due by then).
"""

from typing import Any

from aws_lambda_powertools import Logger

from assistants_core.blobs import default_blob_store
from assistants_core.repository import default_repository
from assistants_core.services.expiry import sweep

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    until = event.get("until") if isinstance(event, dict) else None
    return sweep(default_repository(), default_blob_store(), int(until) if until is not None else None)
