"""Step Functions task: run the code a run's last model turn wrote ({tenant, thread_id, run_id, event_seq})."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from assistants_core.blobs import default_blob_store
from assistants_core.code_interpreter.calls import run_code_step
from assistants_core.code_interpreter.sandbox import Sandbox
from assistants_core.repository import default_repository

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(run_id=event["run_id"], thread_id=event["thread_id"])
    outcome = run_code_step(
        default_repository(),
        Sandbox(),
        default_blob_store(),
        event["tenant"],
        event["thread_id"],
        event["run_id"],
        int(event.get("event_seq") or 0),
        seconds_left=context.get_remaining_time_in_millis() / 1000,
    )
    metrics.add_metric(name="CodeInterpreterSteps", unit=MetricUnit.Count, value=1)
    return outcome
