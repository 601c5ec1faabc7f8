"""Counts to dollars: the template's configuration of each function, and the arithmetic.

Each function is billed at the ``MemorySize`` and ``Architectures`` template.yaml gives it (its
own or the Globals'), read here, never written down a second time; a function with
``SnapStart: {ApplyOn: PublishedVersions}`` adds SnapStart's charges (the cached snapshot to the
idle cost, a restore per new execution environment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from local import template as cfn
from tests.cost.prices import ASSUMPTIONS, PRICES

GB = 1024**3
MONTH_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    memory_mb: int
    architecture: str
    snapstart: bool

    @property
    def gb_second_price(self) -> float:
        return PRICES[f"lambda_gb_s_{self.architecture}"].usd


def function_configs(template: dict[str, Any] | None = None) -> dict[str, FunctionConfig]:
    """Every function's memory, architecture and SnapStart, as template.yaml deploys it."""
    return {
        name: FunctionConfig(name, spec.memory_mb, spec.architecture, spec.snap_start)
        for name, spec in cfn.functions(template).items()
    }


@dataclass
class Counts:
    """What runs of one scenario counted, in all (``runs`` of them)."""

    runs: int = 0
    api_requests: int = 0
    lambda_ms: dict[str, list[float]] = field(default_factory=dict)  # function -> each invocation's ms
    transitions: int = 0
    rru: float = 0.0
    wru: float = 0.0
    s3_tier1: int = 0
    s3_tier2: int = 0
    s3_bytes_stored: int = 0
    vector_put_bytes: int = 0
    vector_queries: int = 0
    index_bytes: int = 0  # the index a query searched: what S3 Vectors' "data processed" is
    session_seconds: float = 0.0
    code_seconds: float = 0.0
    dynamodb_bytes_stored: int = 0
    dynamodb_ops: dict[str, float] = field(default_factory=dict)  # operation -> its units (read or write)

    @classmethod
    def from_meter(cls, runs: int, meter: dict[str, Any], **extra: Any) -> Counts:
        return cls(
            runs=runs,
            api_requests=int(meter.get("api_requests", 0)),
            lambda_ms={name: list(ms) for name, ms in meter.get("lambda_ms", {}).items()},
            rru=float(meter.get("dynamodb", {}).get("rru", 0.0)),
            wru=float(meter.get("dynamodb", {}).get("wru", 0.0)),
            s3_tier1=int(meter.get("s3", {}).get("tier1", 0)),
            s3_tier2=int(meter.get("s3", {}).get("tier2", 0)),
            s3_bytes_stored=int(meter.get("s3", {}).get("bytes_in", 0)),
            vector_put_bytes=int(meter.get("vectors", {}).get("put_bytes", 0)),
            vector_queries=int(meter.get("vectors", {}).get("queries", 0)),
            session_seconds=float(meter.get("session_seconds", 0.0)),
            code_seconds=float(meter.get("code_seconds", 0.0)),
            dynamodb_ops={op: float(units) for op, units in meter.get("dynamodb_ops", {}).items()},
            **extra,
        )


def lambda_cost(config: FunctionConfig, durations_ms: list[float]) -> tuple[float, float]:
    """(requests, duration) dollars: each invocation's duration rounded up to 1 ms, at the
    function's memory and architecture."""
    gb_seconds = sum(math.ceil(ms) for ms in durations_ms) / 1000 * config.memory_mb / 1024
    return len(durations_ms) * PRICES["lambda_request"].usd, gb_seconds * config.gb_second_price


def per_run_cost(counts: Counts, configs: dict[str, FunctionConfig]) -> dict[str, float]:
    """Dollars per run, by line: the counts divided by the runs they cover."""
    runs = max(counts.runs, 1)
    lines: dict[str, float] = {"API Gateway": counts.api_requests * PRICES["apigw_rest_request"].usd}
    requests = 0.0
    for name, durations in sorted(counts.lambda_ms.items()):
        request_usd, duration_usd = lambda_cost(configs[name], durations)
        requests += request_usd
        lines[f"λ {name}"] = duration_usd
    lines["λ requests"] = requests
    lines["Step Functions"] = counts.transitions * PRICES["sfn_standard_transition"].usd
    lines["DynamoDB writes"] = counts.wru * PRICES["dynamodb_wru"].usd
    lines["DynamoDB reads"] = counts.rru * PRICES["dynamodb_rru"].usd
    lines["S3 requests"] = (
        counts.s3_tier1 * PRICES["s3_tier1_request"].usd + counts.s3_tier2 * PRICES["s3_tier2_request"].usd
    )
    lines["S3 Vectors"] = (
        counts.vector_put_bytes / GB * PRICES["s3vectors_put_gb"].usd
        + counts.vector_queries * PRICES["s3vectors_query"].usd
        + counts.vector_queries * counts.index_bytes / 1e12 * PRICES["s3vectors_query_tb"].usd
    )
    lines["AgentCore"] = (
        counts.session_seconds / 3600 * ASSUMPTIONS["agentcore_session_gb"] * PRICES["agentcore_gb_hour"].usd
        + counts.code_seconds / 3600 * PRICES["agentcore_vcpu_hour"].usd
    )
    return {line: usd / runs for line, usd in lines.items() if usd}


def storage_per_run_month(counts: Counts) -> dict[str, float]:
    """Dollars a month to keep what one run leaves behind."""
    runs = max(counts.runs, 1)
    return {
        "DynamoDB": counts.dynamodb_bytes_stored / GB * PRICES["dynamodb_storage_gb_month"].usd / runs,
        "S3": counts.s3_bytes_stored / GB * PRICES["s3_storage_gb_month"].usd / runs,
        "S3 Vectors": counts.vector_put_bytes / GB * PRICES["s3vectors_storage_gb_month"].usd / runs,
    }


def idle_month(configs: dict[str, FunctionConfig], template: dict[str, Any] | None = None) -> dict[str, float]:
    """What the stack costs a month with no traffic and no data: scheduled functions, and each
    SnapStart snapshot cached (one published version each)."""
    template = template or cfn.load_template()
    lines: dict[str, float] = {}
    for name, resource in cfn.resources(template, "AWS::Serverless::Function").items():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "Schedule":
                continue
            schedule = str(event["Properties"]["Schedule"])  # rate(1 hour), rate(5 minutes), ...
            amount, unit = schedule.removeprefix("rate(").removesuffix(")").split()
            seconds = int(amount) * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
            invocations = MONTH_SECONDS / seconds
            request_usd, duration_usd = lambda_cost(
                configs[name], [ASSUMPTIONS["expiry_invocation_s"] * 1000] * int(invocations)
            )
            lines[f"λ {name} ({schedule})"] = request_usd + duration_usd
    for config in configs.values():
        if config.snapstart:
            gb = config.memory_mb / 1024
            lines[f"SnapStart cache {config.name}"] = gb * MONTH_SECONDS * PRICES["lambda_snapstart_cache_gb_s"].usd
    return lines


def snapstart_restore_usd(configs: dict[str, FunctionConfig]) -> dict[str, float]:
    """Dollars per restored execution environment (a cold start) of each SnapStart function."""
    return {
        c.name: c.memory_mb / 1024 * PRICES["lambda_snapstart_restore_gb"].usd for c in configs.values() if c.snapstart
    }
