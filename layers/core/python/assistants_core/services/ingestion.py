"""Starting ingestion: files added to a store are handed to the ingest state machine.

``statemachine/ingest.asl.json`` maps over the files, runs the ingest function for each with
retries on transient failures, and marks a file ``failed`` when they run out, so a file never
stays ``in_progress``. The API only starts it: adding files answers at once, as OpenAI did,
and ``file_counts`` show the progress.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger

from ..config import boto_config, settings
from ..errors import ServerError
from ..repository import Repository
from ..types.vector_store import StoreFileError

logger = Logger()


class IngestionStarter:
    def __init__(
        self, state_machine_arn: str | None = None, client: Any = None, repo: Repository | None = None
    ) -> None:
        self.state_machine_arn = state_machine_arn or settings().ingest_state_machine_arn
        self.client = client or boto3.client("stepfunctions", config=boto_config())
        self.repo = repo

    def start(self, tenant: str, vector_store_id: str, file_ids: list[str], *, batch_id: str | None = None) -> None:
        """Start one execution for these files; if it cannot start, they fail at once."""
        if not file_ids:
            return
        name = f"{batch_id or file_ids[0]}-{secrets.token_hex(4)}"
        payload = {"tenant": tenant, "vector_store_id": vector_store_id, "file_ids": file_ids}
        try:
            self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload))
        except Exception:
            logger.exception("could not start ingestion", extra={"vector_store_id": vector_store_id})
            self._fail(tenant, vector_store_id, file_ids)
            raise ServerError("The files were added but their processing could not start; add them again.") from None

    def _fail(self, tenant: str, vector_store_id: str, file_ids: list[str]) -> None:
        from ..repository import default_repository
        from .vector_store_files import set_status

        repo = self.repo or default_repository()
        error = StoreFileError(code="server_error", message="The file's processing could not start.")
        for file_id in file_ids:
            set_status(repo, tenant, vector_store_id, file_id, "failed", last_error=error)


@lru_cache(maxsize=1)
def default_ingestion() -> IngestionStarter:
    return IngestionStarter()
