"""/v1/threads/{thread_id}/runs, /v1/threads/runs and run steps.

Runs stream: with ``stream: true`` the response is Server-Sent Events read from the run's
event log, so this router is served by a function behind the Lambda Web Adapter (response
streaming), not mangum, which buffers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from ..errors import InvalidRequestError
from ..orchestrator import RunOrchestrator, default_orchestrator
from ..repository import Repository
from ..services import runs as service
from ..services.lifecycle import RunRef
from ..types import (
    ListPage,
    Run,
    RunCreateParams,
    RunStep,
    RunUpdateParams,
    SubmitToolOutputsParams,
    ThreadAndRunCreateParams,
)
from .dependencies import ApiKey, Paging, Repo, Tenant
from .run_stream import RunStream, RunStreamResponse

router = APIRouter(prefix="/v1/threads")
POLL_AFTER_MS = "500"
# The only value OpenAI accepts in ``include[]`` (create run, list and get run steps).
FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


async def include_fields(include: Annotated[list[str] | None, Query(alias="include[]")] = None) -> list[str] | None:
    """``include[]``, checked here so a bad value is a 400 naming ``include``, as on OpenAI."""
    for value in include or []:
        if value != FILE_SEARCH_CONTENT:
            raise InvalidRequestError(
                f"Invalid value for 'include': '{value}'. Supported values are: '{FILE_SEARCH_CONTENT}'.",
                param="include",
                code="invalid_value",
            )
    return include


Include = Annotated[list[str] | None, Depends(include_fields)]


async def orchestrator() -> RunOrchestrator:
    return default_orchestrator()


Orchestrator = Annotated[RunOrchestrator, Depends(orchestrator)]


def _run_response(run: Run, response: Response) -> Run:
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return run


def _search_content(include: list[str] | None) -> bool:
    return FILE_SEARCH_CONTENT in (include or [])


def _stream(
    repo: Repository, tenant: str, thread_id: str, run_id: str, after_seq: int, include: list[str] | None = None
) -> RunStreamResponse:
    return RunStreamResponse(repo, tenant, RunStream(thread_id, run_id, after_seq, _search_content(include)))


@router.post("/runs", response_model=None)
def create_thread_and_run(
    body: ThreadAndRunCreateParams, tenant: Tenant, key: ApiKey, repo: Repo, sfn: Orchestrator, response: Response
) -> Any:
    run = service.create_thread_and_run(repo, sfn, tenant, body, caller=key)
    if body.stream:
        return _stream(repo, tenant, run.thread_id, run.id, 0)
    return _run_response(run, response)


@router.post("/{thread_id}/runs", response_model=None)
def create_run(
    thread_id: str,
    body: RunCreateParams,
    tenant: Tenant,
    key: ApiKey,
    repo: Repo,
    sfn: Orchestrator,
    response: Response,
    include: Include,
) -> Any:
    run = service.create_run(repo, sfn, tenant, thread_id, body, caller=key)
    if body.stream:
        return _stream(repo, tenant, run.thread_id, run.id, 0, include)
    return _run_response(run, response)


@router.get("/{thread_id}/runs")
def list_runs(thread_id: str, tenant: Tenant, repo: Repo, paging: Paging) -> ListPage[Run]:
    return service.list_runs(repo, tenant, thread_id, paging)


@router.get("/{thread_id}/runs/{run_id}")
def get_run(thread_id: str, run_id: str, tenant: Tenant, repo: Repo, response: Response) -> Run:
    return _run_response(service.get_run(repo, RunRef(tenant, thread_id, run_id)), response)


@router.post("/{thread_id}/runs/{run_id}")
def update_run(
    thread_id: str, run_id: str, body: RunUpdateParams, tenant: Tenant, repo: Repo, response: Response
) -> Run:
    return _run_response(service.update_run(repo, RunRef(tenant, thread_id, run_id), body), response)


@router.post("/{thread_id}/runs/{run_id}/cancel")
def cancel_run(thread_id: str, run_id: str, tenant: Tenant, repo: Repo, sfn: Orchestrator, response: Response) -> Run:
    return _run_response(service.cancel_run(repo, sfn, RunRef(tenant, thread_id, run_id)), response)


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=None)
def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputsParams,
    tenant: Tenant,
    repo: Repo,
    sfn: Orchestrator,
    response: Response,
) -> Any:
    run, after_seq = service.submit_tool_outputs(repo, sfn, RunRef(tenant, thread_id, run_id), body)
    if body.stream:
        return _stream(repo, tenant, thread_id, run_id, after_seq)
    return _run_response(run, response)


@router.get("/{thread_id}/runs/{run_id}/steps")
def list_steps(
    thread_id: str, run_id: str, tenant: Tenant, repo: Repo, paging: Paging, include: Include
) -> ListPage[RunStep]:
    return service.list_steps(repo, RunRef(tenant, thread_id, run_id), paging, search_content=_search_content(include))


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}")
def get_step(thread_id: str, run_id: str, step_id: str, tenant: Tenant, repo: Repo, include: Include) -> RunStep:
    return service.get_step(repo, RunRef(tenant, thread_id, run_id), step_id, search_content=_search_content(include))
