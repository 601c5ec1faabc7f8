"""``make cost``: count typical runs on the local stack and print what they would cost on AWS.

``python -m tests.cost [--quick] [--json FILE] [--counts FILE] [--env NAME=VALUE] [--what-if F=MB[:ARCH]]``:
``--quick`` measures the short answer only; ``--json`` also writes the raw counts, which
``--counts`` prices again without measuring; ``--env`` sets a variable on the local stack (the
app's settings, e.g. ``DELTA_FLUSH_INTERVAL_MS``); ``--what-if`` prices the measured durations at
another memory size or architecture (valid where the function waits rather than computes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

from tests.cost.model import (
    Counts,
    FunctionConfig,
    function_configs,
    idle_month,
    per_run_cost,
    snapstart_restore_usd,
    storage_per_run_month,
)
from tests.cost.prices import ASSUMPTIONS, CHECKED, PRICES, REGION
from tests.cost.scenarios import measure_all, scenarios

TARGET = ("stream30_tool", 0.40)  # the target: $ per 1,000 runs of 30 s with one tool round


def gb_seconds(counts: Counts, configs: dict[str, FunctionConfig]) -> float:
    return sum(
        sum(math.ceil(ms) for ms in durations) / 1000 * configs[name].memory_mb / 1024
        for name, durations in counts.lambda_ms.items()
    ) / max(counts.runs, 1)


def report(results: dict[str, Counts], configs: dict[str, FunctionConfig]) -> str:
    out = [f"Modelled AWS cost per 1,000 runs ({REGION}, prices checked {CHECKED}, model tokens excluded)", ""]
    titles = {s.name: s.title for s in scenarios()}
    per_run = {name: per_run_cost(counts, configs) for name, counts in results.items()}
    lines = sorted({line for costs in per_run.values() for line in costs}, key=_line_order)
    names = list(results)
    out.append(f"{'$ per 1,000 runs':<34}" + "".join(f"{n:>17}" for n in names))
    for line in lines:
        out.append(f"{line:<34}" + "".join(f"{per_run[n].get(line, 0.0) * 1000:>17.4f}" for n in names))
    out.append(f"{'TOTAL':<34}" + "".join(f"{sum(per_run[n].values()) * 1000:>17.4f}" for n in names))
    out.append("")
    out.append("Counted per run (mean of the measured runs)")
    rows = [
        ("runs measured", lambda c: f"{c.runs}"),
        ("API Gateway requests", lambda c: f"{c.api_requests / c.runs:.1f}"),
        ("Lambda invocations", lambda c: f"{sum(len(v) for v in c.lambda_ms.values()) / c.runs:.1f}"),
        ("Lambda GB-s", lambda c: f"{gb_seconds(c, configs):.2f}"),
        ("state transitions", lambda c: f"{c.transitions / c.runs:.1f}"),
        ("DynamoDB WRU", lambda c: f"{c.wru / c.runs:.1f}"),
        ("DynamoDB RRU", lambda c: f"{c.rru / c.runs:.1f}"),
        ("S3 requests (tier 1 / 2)", lambda c: f"{c.s3_tier1 / c.runs:.1f}/{c.s3_tier2 / c.runs:.1f}"),
        ("S3 Vectors queries", lambda c: f"{c.vector_queries / c.runs:.1f}"),
        ("AgentCore session s", lambda c: f"{c.session_seconds / c.runs:.0f}"),
        ("DynamoDB KB stored", lambda c: f"{c.dynamodb_bytes_stored / c.runs / 1024:.1f}"),
    ]
    for label, cell in rows:
        out.append(f"{label:<34}" + "".join(f"{cell(results[n]):>17}" for n in names))
    for op in sorted({op for c in results.values() for op in c.dynamodb_ops}):
        units = [results[n].dynamodb_ops.get(op, 0.0) / results[n].runs for n in names]
        out.append(f"{'  units of ' + op:<34}" + "".join(f"{u:>17.1f}" for u in units))
    out.append("")
    out.append("Lambda ms per run, by function (configured memory, architecture)")
    functions = sorted({f for c in results.values() for f in c.lambda_ms})
    for function in functions:
        config = configs[function]
        label = f"{function.removesuffix('Function')} {config.memory_mb} MB {config.architecture}"
        out.append(
            f"{label:<34}"
            + "".join(f"{sum(results[n].lambda_ms.get(function, [])) / results[n].runs:>17.0f}" for n in names)
        )
    out.append("")
    storage = {n: storage_per_run_month(results[n]) for n in names}
    out.append("Storage: $ a month to keep 1,000 runs' data")
    for line in ("DynamoDB", "S3", "S3 Vectors"):
        out.append(f"{line:<34}" + "".join(f"{storage[n][line] * 1000:>17.5f}" for n in names))
    out.append("")
    idle = idle_month(configs)
    out.append(f"Idle cost, no traffic: ${sum(idle.values()):.4f} a month, plus storage as above")
    for line, usd in idle.items():
        out.append(f"  {line}: ${usd:.4f}")
    for name, usd in snapstart_restore_usd(configs).items():
        out.append(f"  SnapStart restore {name}: ${usd * 1000:.4f} per 1,000 cold starts")
    memory = ASSUMPTIONS["agentcore_session_gb"]
    out.append(
        f"  (code_interpreter: AgentCore memory assumed {memory} GB for the session's life;"
        " a session left open is billed to its timeout)"
    )
    scenario, limit = TARGET
    if scenario in per_run:
        total = sum(per_run[scenario].values()) * 1000
        verdict = "met" if total <= limit else f"MISSED by ${total - limit:.2f}"
        out += ["", f"Target: {titles[scenario]} <= ${limit:.2f} per 1,000 runs: ${total:.2f}, {verdict}"]
    return "\n".join(out)


def _line_order(line: str) -> tuple[int, str]:
    order = ["API Gateway", "λ", "Step Functions", "DynamoDB", "S3", "AgentCore"]
    return next((i for i, prefix in enumerate(order) if line.startswith(prefix)), len(order)), line


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK flags the Assistants API
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the short answer only")
    parser.add_argument("--only", action="append", default=[], metavar="SCENARIO", help="measure only these")
    parser.add_argument("--json", type=Path, help="write the raw counts here")
    parser.add_argument("--counts", type=Path, help="price counts a --json run wrote, without measuring")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set on the local stack (e.g. a flush interval)",
    )
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        metavar="FUNCTION=MB[:ARCH]",
        help="price the same durations at another memory size or architecture",
    )
    args = parser.parse_args(argv)
    configs = function_configs()
    for change in args.what_if:
        name, _, setting = change.partition("=")
        memory, _, architecture = setting.partition(":")
        configs[name] = replace(
            configs[name], memory_mb=int(memory), architecture=architecture or configs[name].architecture
        )
    if args.counts:
        results = {n: Counts(**c) for n, c in json.loads(args.counts.read_text()).items()}
    else:
        env = dict(item.split("=", 1) for item in args.env)
        with tempfile.TemporaryDirectory(prefix="cost-") as workdir:
            chosen = [s for s in scenarios(quick=args.quick) if not args.only or s.name in args.only]
            results = measure_all(Path(workdir), chosen, env)
    if args.json:
        args.json.write_text(json.dumps({n: c.__dict__ for n, c in results.items()}, indent=1))
    if args.what_if or args.env:
        print(f"What if: {', '.join(args.what_if + args.env)} (durations as measured)\n")
    print(report(results, configs))
    print("\nPrices:")
    for key, price in PRICES.items():
        print(f"  {key}: ${price.usd:.10g} per {price.unit} ({price.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
