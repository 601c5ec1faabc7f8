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

logger = Logger()
# Files per ingest execution: about a dozen history events each (with retries, more), against
# the 25,000 an execution may have; a batch of 2,000 files is ten executions, five files at a
# time each.
FILES_PER_EXECUTION = 200


class IngestionStarter:
    def __init__(
        self, state_machine_arn: str | None = None, client: Any = None, repo: Repository | None = None
    ) -> None:
        self.state_machine_arn = state_machine_arn or settings().ingest_state_machine_arn
        self._client = client
        self.repo = repo

    @property
    def client(self) -> Any:
        """The Step Functions client, made when the first files are added: most requests that
        take this dependency (a store created empty, an assistant) start nothing."""
        if self._client is None:
            self._client = boto3.client("stepfunctions", config=boto_config())
        return self._client

    def start(self, tenant: str, vector_store_id: str, file_ids: list[str], *, batch_id: str | None = None) -> None:
        """Start executions for these files, FILES_PER_EXECUTION each; files whose execution
        cannot start fail at once (adding them again retries them)."""
        for start in range(0, len(file_ids), FILES_PER_EXECUTION):
            group = file_ids[start : start + FILES_PER_EXECUTION]
            name = f"{batch_id or group[0]}-{secrets.token_hex(4)}"
            payload = {"tenant": tenant, "vector_store_id": vector_store_id, "file_ids": group}
            try:
                self.client.start_execution(
                    stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
                )
            except Exception:
                logger.exception("could not start ingestion", extra={"vector_store_id": vector_store_id})
                self._fail(tenant, vector_store_id, file_ids[start:])
                raise ServerError(
                    "The files were added but the processing of some could not start; add them again."
                ) from None

    def _fail(self, tenant: str, vector_store_id: str, file_ids: list[str]) -> None:
        from ..repository import default_repository
        from .vector_store_files import mark_failed

        repo = self.repo or default_repository()
        for file_id in file_ids:
            mark_failed(
                repo, tenant, vector_store_id, file_id, "server_error", "The file's processing could not start."
            )


@lru_cache(maxsize=1)
def default_ingestion() -> IngestionStarter:
    return IngestionStarter()
