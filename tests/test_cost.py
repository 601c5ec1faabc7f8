"""``make cost``: its arithmetic against hand-computed figures, and one scenario counted for real.

The arithmetic tests use literal prices (the table's today): a price edit in
tests/cost/prices.py must come with these figures re-computed by hand.
"""

from __future__ import annotations

import os

import pytest

from local.meter import Meter, vector_bytes
from tests.cost.model import Counts, FunctionConfig, function_configs, lambda_cost, per_run_cost
from tests.cost.scenarios import count_transitions, item_bytes


def test_a_run_costs_what_the_hand_computed_figures_say() -> None:
    configs = {"F": FunctionConfig("F", 1024, "x86_64", False), "G": FunctionConfig("G", 512, "arm64", False)}
    counts = Counts(
        runs=2,
        api_requests=4,
        lambda_ms={"F": [1.2, 2999.1], "G": [1000.0]},  # F bills 2 + 3,000 ms at 1 GB; G 1 s at 0.5 GB
        transitions=6,
        wru=10,
        rru=20,
    )
    lines = per_run_cost(counts, configs)
    by_hand = {
        "API Gateway": 4 * 3.50 / 1e6 / 2,
        "λ F": 3.002 * 1.0 * 0.0000166667 / 2,
        "λ G": 1.0 * 0.5 * 0.0000133334 / 2,
        "λ requests": 3 * 0.20 / 1e6 / 2,
        "Step Functions": 6 * 0.025 / 1000 / 2,
        "DynamoDB writes": 10 * 0.625 / 1e6 / 2,
        "DynamoDB reads": 20 * 0.125 / 1e6 / 2,
    }
    assert lines.keys() == by_hand.keys()
    for line, usd in by_hand.items():
        assert lines[line] == pytest.approx(usd, rel=1e-9), line
    assert sum(lines.values()) * 1000 == pytest.approx(0.11502507, rel=1e-6)  # $ per 1,000 such runs


def test_lambda_bills_each_invocation_rounded_up_to_a_millisecond() -> None:
    config = FunctionConfig("F", 128, "x86_64", False)
    requests, duration = lambda_cost(config, [0.1, 0.1, 0.1])  # 3 ms billed, not 0.3
    assert requests == pytest.approx(3 * 0.2e-6)
    assert duration == pytest.approx(0.003 * 0.125 * 0.0000166667)


def test_function_configs_read_memory_architecture_and_snapstart_with_globals() -> None:
    template = {
        "Globals": {"Function": {"MemorySize": 512, "Architectures": ["x86_64"]}},
        "Parameters": {"Memory": {"Type": "Number", "Default": 256}},
        "Resources": {
            "A": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "a", "Handler": "app.handler"}},
            "B": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "b",
                    "Handler": "app.handler",
                    "MemorySize": {"Ref": "Memory"},
                    "Architectures": ["arm64"],
                    "SnapStart": {"ApplyOn": "PublishedVersions"},
                },
            },
        },
    }
    configs = function_configs(template)
    assert configs["A"] == FunctionConfig("A", 512, "x86_64", False)
    assert configs["B"] == FunctionConfig("B", 256, "arm64", True)
    assert set(function_configs()) >= {"RunsFunction", "AgentStepFunction"}  # and template.yaml reads


def test_transitions_are_states_entered_plus_retries() -> None:
    events = [
        {"type": "ExecutionStarted"},
        {"type": "TaskStateEntered"},
        {"type": "TaskScheduled"},
        {"type": "TaskFailed"},
        {"type": "TaskScheduled"},  # a retry: billed as one more transition
        {"type": "TaskStateExited"},
        {"type": "ChoiceStateEntered"},
        {"type": "SucceedStateEntered"},
        {"type": "ExecutionSucceeded"},
    ]
    assert count_transitions(events) == 4


def test_item_and_vector_sizes_follow_the_documented_rules() -> None:
    # names + values + 100 bytes of overhead: "PK"+"abc", "n"+123 (2 digits' pairs + 1), "ok"+true
    assert item_bytes({"PK": {"S": "abc"}, "n": {"N": "123"}, "ok": {"BOOL": True}}) == 100 + 5 + 1 + 3 + 2 + 1
    assert vector_bytes({"key": "k1", "data": {"float32": [0.0] * 512}, "metadata": {"a": 1}}) == 2048 + 2 + 8


def test_the_meter_charges_dynamodbs_minimums_where_dynamodb_local_reports_none() -> None:
    meter = Meter()
    meter._dynamodb("Query", {"ConsistentRead": True}, {"ConsumedCapacity": {"CapacityUnits": 0.0}})
    meter._dynamodb("Query", {}, {"ConsumedCapacity": {"CapacityUnits": 0.0}})
    meter._dynamodb("PutItem", {}, {"Error": {"Code": "ConditionalCheckFailedException"}})
    meter._dynamodb(
        "TransactWriteItems", {"TransactItems": [{}, {}, {}]}, {"Error": {"Code": "TransactionCanceledException"}}
    )
    meter._dynamodb("TransactWriteItems", {}, {"ConsumedCapacity": [{"CapacityUnits": 4.0}, {"CapacityUnits": 2.0}]})
    assert meter.snapshot()["dynamodb"] == {"rru": 1.5, "wru": 1 + 6 + 6}


@pytest.mark.slow
def test_a_short_run_is_counted_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two short streamed runs on a metered local stack: what every run must cost is there."""
    if not os.environ.get("DYNAMODB_LOCAL_DIR"):
        pytest.skip("DynamoDB Local is needed (make test sets DYNAMODB_LOCAL_DIR)")
    from tests.cost.scenarios import measure_all, scenarios

    counts = measure_all(tmp_path, scenarios(quick=True))["short"]
    runs = counts.runs
    assert runs == 2
    assert counts.api_requests == 2 * runs  # threads.create with the message, and the streamed run
    assert len(counts.lambda_ms["AgentStepFunction"]) == runs  # one model turn each
    assert len(counts.lambda_ms["RunsFunction"]) == runs
    assert all(ms > 0 for durations in counts.lambda_ms.values() for ms in durations)
    assert counts.transitions == 3 * runs  # AgentStep, Route, Done: the states each history shows
    assert counts.wru >= 5 * runs and counts.rru >= 2 * runs  # the run, its events, its message; the stream's reads
    assert counts.dynamodb_bytes_stored > 0
    assert counts.vector_queries == counts.s3_tier1 == counts.session_seconds == 0
    total = sum(per_run_cost(counts, function_configs()).values()) * 1000
    assert 0.01 < total < 5.0, total  # $ per 1,000 short runs: plausible, not zero, not absurd


def test_the_meter_counts_s3_requests_by_class_and_bytes_through_a_clients_hooks() -> None:
    import boto3
    from moto import mock_aws

    meter = Meter()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        meter.attach(s3)
        s3.create_bucket(Bucket="meter-test")  # tier 2: not one of the PUT, COPY, POST, LIST requests
        s3.put_object(Bucket="meter-test", Key="k", Body=b"x" * 1000)
        s3.get_object(Bucket="meter-test", Key="k")["Body"].read()
        s3.list_objects_v2(Bucket="meter-test")
        s3.delete_object(Bucket="meter-test", Key="k")  # free
    snapshot = meter.snapshot()
    assert snapshot["s3"] == {"tier1": 2, "tier2": 2, "bytes_in": 1000, "bytes_out": 1000}
    assert snapshot["calls"]["s3.DeleteObject"] == 1
