"""Step Functions task: one model turn of a run ({tenant, thread_id, run_id, event_seq, after, attempt})."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from assistants_core import snapstart, tokens
from assistants_core.agent import model
from assistants_core.agent.step import run_agent_step
from assistants_core.code_interpreter.calls import CONTINUE as AFTER_CODE
from assistants_core.repository import default_repository

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Cold start: nothing loads ahead of the first turn, which imports only what it needs: httpx for
# a model on an OpenAI-compatible server, litellm for the others (seconds), and reads provider
# credentials (no network call at import). A SnapStart init, whose time no user waits for, loads
# litellm and the tokenizers just before its snapshot instead. README: Benchmark > Cold start.
snapstart.load_before_snapshot(model.warm_up, tokens.warm_up)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(run_id=event["run_id"], thread_id=event["thread_id"])
    outcome = run_agent_step(
        default_repository(),
        event["tenant"],
        event["thread_id"],
        event["run_id"],
        int(event.get("event_seq") or 0),
        resume=event.get("after") == AFTER_CODE,  # RunCode ran the model's code: the run goes on
        attempt=int(event.get("attempt") or 0),  # Step Functions' retry of a crashed invocation
    )
    # How turns end (completed, requires_action, failed, ...): the service's health at a glance.
    # Metrics of this invocation alone, flushed here: a dimension added to the shared Metrics would
    # meet an overlapping invocation's in the same process (the local stack runs them so).
    turn = EphemeralMetrics()
    turn.add_dimension(name="outcome", value=outcome["status"])
    turn.add_metric(name="AgentTurns", unit=MetricUnit.Count, value=1)
    turn.flush_metrics()
    return outcome
