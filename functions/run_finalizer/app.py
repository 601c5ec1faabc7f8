"""Step Functions task: end a run that the state machine could not finish normally.

``fail``: the agent step crashed or timed out (the Catch of any state). ``expire``: nobody
submitted tool outputs within the wait's TimeoutSeconds.
"""

from typing import Any

from aws_lambda_powertools import Logger

from assistants_core.repository import default_repository
from assistants_core.services.lifecycle import RunRef, close_open_steps, fail, release_thread, transition
from assistants_core.services.run_events import RunEventWriter

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    repo = default_repository()
    ref = RunRef(event["tenant"], event["thread_id"], event["run_id"])
    events = RunEventWriter(repo, ref.tenant, ref.run_id)
    try:
        if event["action"] == "expire":
            close_open_steps(repo, ref, "expired", events)
            run = transition(
                repo, ref, "expired", allowed_from={"requires_action"}, events=events, remove=["task_token"]
            )
        else:
            cause = (event.get("error") or {}).get("Cause") or "The run's agent step failed."
            logger.error("run failed in the state machine", extra={"run_id": ref.run_id, "cause": cause})
            run = fail(repo, ref, "server_error", "The server had an error while processing the run.", events)
    finally:
        release_thread(repo, ref)  # idempotent: also frees a thread whose run ended but kept its lock
    return {"status": run.status if run else "unchanged"}
