"""How often a stream reads the run's event log: each read is a DynamoDB read the user pays for."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistants_core.config import settings
from assistants_core.services.run_events import poll_delay

CONFIG = replace(
    settings(),
    stream_poll_interval_ms=20,
    stream_delta_poll_interval_ms=33,
    stream_poll_max_interval_ms=250,
)


def test_waiting_for_the_first_token_reads_at_the_base_interval() -> None:
    assert poll_delay(None, 0.0, CONFIG) == pytest.approx(0.020)
    assert poll_delay("thread.run.in_progress", 0.3, CONFIG) == pytest.approx(0.020)
    assert poll_delay("thread.message.created", 0.3, CONFIG) == pytest.approx(0.020)


def test_while_deltas_stream_it_reads_less_often() -> None:
    # Deltas after the first are written at most every flush interval (100 ms).
    assert poll_delay("thread.message.delta", 0.0, CONFIG) == pytest.approx(0.033)
    assert poll_delay("thread.run.step.delta", 0.02, CONFIG) == pytest.approx(0.033)


def test_a_long_silence_stretches_the_interval_to_the_maximum() -> None:
    assert poll_delay("thread.run.in_progress", 2.0, CONFIG) == pytest.approx(0.100)  # a twentieth of the wait
    assert poll_delay("thread.message.delta", 2.0, CONFIG) == pytest.approx(0.100)
    assert poll_delay("thread.run.in_progress", 60.0, CONFIG) == pytest.approx(0.250)


def test_the_stretch_can_be_turned_off() -> None:
    flat = replace(CONFIG, stream_poll_max_interval_ms=20)
    assert poll_delay("thread.run.in_progress", 60.0, flat) == pytest.approx(0.020)
