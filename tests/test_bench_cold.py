"""The cold-start benchmark (``tests.bench_cold``) still measures: one cheap function, one sample."""

from __future__ import annotations

from pathlib import Path

from tests.bench_cold import TARGET_API_S, measure


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
