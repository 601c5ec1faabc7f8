"""What the retrieval tests share: uploading, waiting for ingestion, the ingest executions and
OpenAI's error shape, through the official SDK and behind it (the ``aws`` fixture)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from openai import OpenAI

from .openapi_spec import validate_object

DEADLINE = 60.0  # seconds: the first ingestion also loads the embedder


def upload(client: OpenAI, name: str, data: bytes | str, purpose: str = "assistants") -> str:
    raw = data.encode() if isinstance(data, str) else data
    return client.files.create(file=(name, raw), purpose=purpose).id  # type: ignore[arg-type]


def wait_until(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def settled_store(client: OpenAI, store_id: str, deadline: float = DEADLINE) -> Any:
    """The store once none of its files is in progress."""

    def done() -> Any:
        store = client.vector_stores.retrieve(store_id)
        return store if store.file_counts.in_progress == 0 else None

    return wait_until(done, f"store {store_id} to settle", deadline)


def settled_file(client: OpenAI, store_id: str, file_id: str) -> Any:
    def done() -> Any:
        item = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        return item if item.status != "in_progress" else None

    return wait_until(done, f"file {file_id} in {store_id}")


def executions(aws: Callable[[str], Any], machine: str) -> list[dict[str, Any]]:
    """Every execution of the state machine whose name holds ``machine`` (``Ingest``, ``Run``)."""
    sfn = aws("stepfunctions")
    machines = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if machine in m["name"]]
    assert len(machines) == 1, machines
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machines[0])
    return [execution for page in pages for execution in page["executions"]]


def assert_error(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    """An error in OpenAI's shape (validated against the spec's ErrorResponse)."""
    assert response.status_code == status, response.text
    body = response.json()
    validate_object("ErrorResponse", body)
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)
