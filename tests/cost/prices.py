"""AWS prices the cost model uses: us-east-1, on-demand, no free tier, in US dollars.

One table, so a price change is one edit. Each entry says where it comes from and when it was
read; AWS's own pricing page is the source of record for each (the date is when the figure was
checked against it or, where the page could not be read here, against the secondary page
named). Prices change (DynamoDB on-demand halved on 2024-11-01): re-check before relying on them.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECKED = "2026-11-30"
REGION = "us-east-1"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str
    note: str = ""


PRICES: dict[str, Price] = {
    "apigw_rest_request": Price(
        3.50 / 1e6,
        "REST API request (first 333 M a month)",
        "https://aws.amazon.com/api-gateway/pricing/",
        "also AWS whitepaper 'Best Practices for Designing Amazon API Gateway Private APIs', Table 4",
    ),
    "lambda_request": Price(0.20 / 1e6, "Lambda request", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_s_x86_64": Price(
        0.0000166667, "Lambda GB-second, x86_64 (first 6 B GB-s a month)", "https://aws.amazon.com/lambda/pricing/"
    ),
    "lambda_gb_s_arm64": Price(
        0.0000133334, "Lambda GB-second, arm64 (first 7.5 B GB-s a month)", "https://aws.amazon.com/lambda/pricing/"
    ),
    "lambda_snapstart_cache_gb_s": Price(
        0.0000015046,
        "SnapStart snapshot cached, per GB-second of the function's memory, per published version",
        "https://aws.amazon.com/lambda/pricing/",
        "figure as quoted by awsnegotiations.com/blog/lambda-snapstart-cost-impact (2026-05)",
    ),
    "lambda_snapstart_restore_gb": Price(
        0.0001397998,
        "SnapStart restore, per GB of the function's memory, per restored environment",
        "https://aws.amazon.com/lambda/pricing/",
        "figure as quoted by awsnegotiations.com/blog/lambda-snapstart-cost-impact (2026-05)",
    ),
    "sfn_standard_transition": Price(
        0.025 / 1000,
        "Step Functions Standard state transition (retries count)",
        "https://aws.amazon.com/step-functions/pricing/",
    ),
    "dynamodb_wru": Price(
        0.625 / 1e6,
        "DynamoDB on-demand write request unit (after the 2024-11-01 cut)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "dynamodb_rru": Price(
        0.125 / 1e6,
        "DynamoDB on-demand read request unit (after the 2024-11-01 cut)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "dynamodb_storage_gb_month": Price(
        0.25,
        "DynamoDB Standard table storage, GB-month (first 25 GB free)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "s3_tier1_request": Price(
        0.005 / 1000, "S3 Standard PUT, COPY, POST, LIST request", "https://aws.amazon.com/s3/pricing/"
    ),
    "s3_tier2_request": Price(
        0.0004 / 1000, "S3 Standard GET and other requests", "https://aws.amazon.com/s3/pricing/"
    ),
    "s3_storage_gb_month": Price(
        0.023, "S3 Standard storage, GB-month (first 50 TB)", "https://aws.amazon.com/s3/pricing/"
    ),
    "s3vectors_put_gb": Price(
        0.20,
        "S3 Vectors PUT, per GB of logical vector data (vectors, keys, metadata)",
        "https://aws.amazon.com/s3/pricing/",
        "S3 Vectors tab; figures as quoted by exploreagentic.ai (GA 2025-12-02)",
    ),
    "s3vectors_storage_gb_month": Price(
        0.06, "S3 Vectors storage, logical GB-month", "https://aws.amazon.com/s3/pricing/", "S3 Vectors tab"
    ),
    "s3vectors_query": Price(
        2.50 / 1e6, "S3 Vectors QueryVectors request", "https://aws.amazon.com/s3/pricing/", "S3 Vectors tab"
    ),
    "s3vectors_query_tb": Price(
        0.004,
        "S3 Vectors query data processed, per TB (index size x average vector size; first tier)",
        "https://aws.amazon.com/s3/pricing/",
        "S3 Vectors tab",
    ),
    "agentcore_vcpu_hour": Price(
        0.0895,
        "AgentCore Code Interpreter vCPU-hour (active CPU only, per second)",
        "https://aws.amazon.com/bedrock/agentcore/pricing/",
    ),
    "agentcore_gb_hour": Price(
        0.00945,
        "AgentCore Code Interpreter GB-hour (peak memory, whole session incl. idle, 128 MB minimum)",
        "https://aws.amazon.com/bedrock/agentcore/pricing/",
    ),
}

# What the model assumes where a local run cannot measure it.
ASSUMPTIONS = {
    # AgentCore bills a session's peak memory for its whole life, idle included; the local sandbox
    # is a process on this machine, not AgentCore's microVM. 0.5 GB: Python with pandas imported.
    "agentcore_session_gb": 0.5,
    # Read by tests.cost.model.idle(): the expiry function's hourly run (README Benchmark > Cold start).
    "expiry_invocation_s": 0.4,
}
