"""The template's ``Schedule`` events, run as EventBridge would: each function on its rate.

moto stores EventBridge rules but never fires them, so the emulated AWS process runs a thread per
scheduled function that invokes it with a scheduled event. Only ``rate(...)`` expressions are
understood; a ``cron(...)`` schedule is reported and skipped.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from . import template as cfn
from .lambda_runtime import Functions

logger = logging.getLogger(__name__)
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """``rate(1 hour)`` -> 3600; None for anything else (cron)."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def scheduled_event(function: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": cfn.ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": cfn.REGION,
        "resources": [f"arn:aws:events:{cfn.REGION}:{cfn.ACCOUNT}:rule/{function}"],
        "detail": {},
    }


def start(functions: Functions) -> list[threading.Thread]:
    """Start a daemon thread for every ``Schedule`` event of these functions."""
    threads = []
    for name, spec in functions.specs.items():
        for event in spec.events.values():
            if event.get("Type") != "Schedule":
                continue
            expression = str(event.get("Properties", {}).get("Schedule", ""))
            seconds = rate_seconds(expression)
            if seconds is None:
                logger.warning("local stack: schedule %r of %s is not a rate(); not run", expression, name)
                continue
            thread = threading.Thread(
                target=_every, args=(functions, name, seconds), name=f"schedule-{name}", daemon=True
            )
            thread.start()
            threads.append(thread)
    return threads


def _every(functions: Functions, name: str, seconds: int) -> None:
    while True:
        time.sleep(seconds)
        try:
            functions.invoke(name, scheduled_event(name))
        except Exception:  # as on AWS: a failed scheduled invocation is logged, the schedule goes on
            logger.exception("local stack: scheduled invocation of %s failed", name)
