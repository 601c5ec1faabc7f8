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

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def traced(handler: Handler) -> Handler:
    """``handler`` in a Powertools Tracer subsegment, where tracing is on.

    Creating a ``Tracer`` imports the X-Ray SDK (and, outside Lambda, creates its botocore X-Ray
    client) even when tracing is off: a fifth of an API function's cold import. So the Tracer
    is made only where Powertools would trace (its own rule: not with POWERTOOLS_TRACE_DISABLED,
    not outside Lambda, not in SAM local); there it patches and traces exactly as before.
    """
    if Tracer._is_tracer_disabled():
        return handler
    return Tracer().capture_lambda_handler(handler, capture_response=False)


def mangum_handler(app: Any) -> Handler:
    adapter = Mangum(app, lifespan="off")

    # The event's headers hold the caller's API key: never logged, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId", log_event=False)
    @traced
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return adapter(event, context)

    return handler
