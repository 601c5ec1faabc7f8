"""A run's statuses, apart from the run's model: code that only checks a status (the rate
limits every API function imports) need not build the run's models."""

from __future__ import annotations

from typing import Literal

RunStatus = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"cancelled", "failed", "completed", "incomplete", "expired"})
