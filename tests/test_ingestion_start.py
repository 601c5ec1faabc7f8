"""Starting ingestion: one execution per FILES_PER_EXECUTION files, each named after its batch
(or first file), so an execution's history stays far under Step Functions' 25,000 events."""

from __future__ import annotations

import json
from typing import Any

from assistants_core.services.ingestion import FILES_PER_EXECUTION, IngestionStarter


class RecordingStepFunctions:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.started.append(kwargs)
        return {"executionArn": f"arn:x:{kwargs['name']}"}


def test_a_large_batch_is_several_executions_of_at_most_200_files() -> None:
    client = RecordingStepFunctions()
    files = [f"file-{n:024d}" for n in range(2 * FILES_PER_EXECUTION + 50)]
    IngestionStarter("arn:aws:states:us-east-1:1:stateMachine:Ingest", client=client).start(
        "t1", "vs_1", files, batch_id="vsfb_1"
    )
    inputs = [json.loads(call["input"]) for call in client.started]
    assert [len(i["file_ids"]) for i in inputs] == [FILES_PER_EXECUTION, FILES_PER_EXECUTION, 50]
    assert [f for i in inputs for f in i["file_ids"]] == files  # every file once, in order
    assert all(i["tenant"] == "t1" and i["vector_store_id"] == "vs_1" for i in inputs)
    names = [call["name"] for call in client.started]
    assert all(name.startswith("vsfb_1-") for name in names) and len(set(names)) == 3  # unique names
    assert FILES_PER_EXECUTION <= 200


def test_nothing_to_ingest_starts_nothing() -> None:
    client = RecordingStepFunctions()
    IngestionStarter("arn", client=client).start("t1", "vs_1", [])
    assert client.started == []
