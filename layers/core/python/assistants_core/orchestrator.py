"""The run state machine, as the API sees it: start, stop, resume.

Executions are named after the run id, so a run has at most one execution and its ARN
can be derived from the run id alone.
"""

from __future__ import annotations

import contextlib
import json
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from .config import boto_config, settings


class RunOrchestrator:
    def __init__(self, state_machine_arn: str | None = None, client: Any = None) -> None:
        self.state_machine_arn = state_machine_arn or settings().state_machine_arn
        self.client = client or boto3.client("stepfunctions", config=boto_config())

    def execution_arn(self, run_id: str) -> str:
        # arn:aws:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<run_id>
        prefix, _, name = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{name}:{run_id}"

    def start(self, tenant: str, thread_id: str, run_id: str, *, event_seq: int = 0) -> None:
        """Start the run's execution; ``event_seq`` is the last event the API logged (0: unknown)."""
        turn = {"status": "queued", "event_seq": event_seq}
        self.client.start_execution(
            stateMachineArn=self.state_machine_arn,
            name=run_id,
            input=json.dumps({"tenant": tenant, "thread_id": thread_id, "run_id": run_id, "turn": turn}),
        )

    def resume(self, task_token: str) -> None:
        """Hand the submitted tool outputs' turn back to the waiting execution."""
        self.client.send_task_success(taskToken=task_token, output=json.dumps({"resumed": True}))

    def stop(self, run_id: str, task_token: str | None = None) -> None:
        """Stop a run's execution; answering a parked task token too ends its wait at once (even
        if the stop failed, so the execution does not wait out its timeout)."""
        try:
            self.client.stop_execution(executionArn=self.execution_arn(run_id), error="RunCancelled")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("ExecutionDoesNotExist", "ExecutionNotFound"):
                raise
        finally:
            if task_token:
                with contextlib.suppress(ClientError):  # the stop may already have ended the wait
                    self.client.send_task_failure(
                        taskToken=task_token, error="RunCancelled", cause="cancelled by the user"
                    )


@lru_cache(maxsize=1)
def default_orchestrator() -> RunOrchestrator:
    return RunOrchestrator()
