"""Wrap a FastAPI app as a buffered (non-streaming) Lambda handler with Powertools.

Request counts, latency and errors of these functions are API Gateway's and Lambda's own
metrics; custom metrics come from the agent step, where runs are decided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from mangum import Mangum

logger = Logger()
tracer = Tracer()


def mangum_handler(app: Any) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    adapter = Mangum(app, lifespan="off")

    # The event's headers hold the caller's API key: never logged, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId", log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return adapter(event, context)

    return handler
