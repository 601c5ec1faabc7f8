"""The cold-start benchmark (``tests.bench_cold``) still measures: one cheap function, one sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench_cold import AGENT_STEP, TARGET_AGENT_STEP_S, TARGET_API_S, measure


def test_cold_start_of_one_function_is_measured(tmp_path: Path) -> None:
    (row,) = measure(["ModelsFunction"], 1, tmp_path)
    assert row.reason == "" and len(row.samples) == 1, row
    figures = row.samples[0]
    assert figures["first_status"] == "200" and figures["warm_status"] == "200", figures
    assert 0 < figures["import_s"] < 30
    assert 0 < figures["warm_ms"] < 10_000 and 0 < figures["first_ms"] < 10_000
    # A fresh process's own peak (VmHWM), not the parent's that getrusage would carry over.
    assert 20 < figures["peak_mb"] < 1024
    assert row.target_s == TARGET_API_S and row.verdict in ("met", "MISS")


def test_the_agent_steps_invocations_are_model_turns(tmp_path: Path) -> None:
    """Both invocations take a queued run of their own to completed through the fake model: the
    first is the cold turn (import, first request, first token, end), not a read of a finished run."""
    (row,) = measure([AGENT_STEP], 1, tmp_path)
    assert row.reason == "" and len(row.samples) == 1, row
    figures = row.samples[0]
    assert figures["first_status"] == "completed" and figures["warm_status"] == "completed", figures
    assert 0 < figures["warm_ms"] < 30_000 and 0 < figures["first_ms"] < 30_000
    assert row.target_s == TARGET_AGENT_STEP_S and row.verdict in ("met", "MISS")
    # Two queued runs of their own (a queued run reaches completed only through a model turn).
    first, warm = (
        json.loads((tmp_path / f"{AGENT_STEP}-0.{kind}.json").read_text()) for kind in ("event", "warm-event")
    )
    assert first["run_id"] != warm["run_id"] and first["thread_id"] != warm["thread_id"]


def test_the_cold_starts_are_measured_without_snapstart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The targets are without SnapStart: a SnapStart init would load litellm for its snapshot."""
    from local import template as cfn
    from tests.bench_cold import function_env

    monkeypatch.setenv("LOCAL_PARAMETERS", "LogLevel=DEBUG")
    env = function_env({}, "http://127.0.0.1:1")
    monkeypatch.setenv("LOCAL_PARAMETERS", env["LOCAL_PARAMETERS"])
    values = cfn.parameter_values()
    assert values["SnapStart"] == "Disabled" and values["LogLevel"] == "DEBUG"
