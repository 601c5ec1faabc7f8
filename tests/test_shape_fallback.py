"""Without OpenAI's spec the shape checks fall back to the openai SDK's own types, and still fail.

Runs in both modes: the spec check is forced off with monkeypatch, so the fallback is exercised
whether or not ``openapi.yaml`` is present.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.harness import openapi_spec as spec
from tests.test_openapi_spec import ASSISTANT, MESSAGE, RUN, RUN_STEP, THREAD, _list


@pytest.fixture(autouse=True)
def _no_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec, "spec_available", lambda: False)


ERROR = {"message": "No such run", "type": "invalid_request_error", "param": None, "code": None}


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


@pytest.mark.parametrize(
    ("schema_name", "instance"),
    [
        ("AssistantObject", ASSISTANT),
        ("ThreadObject", THREAD),
        ("MessageObject", MESSAGE),
        ("RunObject", RUN),
        ("RunStepObject", RUN_STEP),
        ("ListRunsResponse", _list([RUN])),
        ("ListMessagesResponse", _list([])),
        ("DeleteThreadResponse", {"id": "thread_abc123", "object": "thread.deleted", "deleted": True}),
        ("ErrorResponse", {"error": ERROR}),
    ],
)
def test_valid_objects_pass(schema_name: str, instance: Any) -> None:
    spec.validate_object(schema_name, instance)


def test_run_without_status_fails() -> None:
    with pytest.raises(AssertionError, match=r"RunObject.*\n.*\$\.status: Field required"):
        spec.validate_object("RunObject", _without(RUN, "status"))


@pytest.mark.parametrize(
    ("schema_name", "instance"),
    [
        ("RunObject", {**RUN, "created_at": "yesterday"}),
        ("RunObject", {**RUN, "status": "sleeping"}),
        ("AssistantObject", _without(ASSISTANT, "model")),
        ("DeleteAssistantResponse", {"id": "asst_abc123", "object": "assistant.deleted", "deleted": "yes"}),
        ("ErrorResponse", {"message": "not wrapped in error"}),
        ("ListRunsResponse", _list([_without(RUN, "status")])),
        ("ListRunsResponse", _without(_list([RUN]), "has_more")),
    ],
    ids=["wrong type", "bad enum", "missing field", "bool as string", "unwrapped error", "bad item", "no has_more"],
)
def test_invalid_objects_fail(schema_name: str, instance: Any) -> None:
    with pytest.raises(AssertionError):
        spec.validate_object(schema_name, instance)


def test_unknown_schema_name_fails() -> None:
    with pytest.raises(AssertionError, match="unknown schema 'NoSuchObject'"):
        spec.validate_object("NoSuchObject", {})


def test_validate_response_maps_operations() -> None:
    spec.validate_response("post", "/v1/threads/thread_abc123/runs", RUN)
    with pytest.raises(AssertionError):
        spec.validate_response("post", "/v1/threads/thread_abc123/runs", THREAD)
    with pytest.raises(AssertionError, match="no SDK type"):
        spec.validate_response("get", "/nowhere", {})


def test_stream_events() -> None:
    spec.validate_stream_event("thread.run.created", RUN)
    spec.validate_stream_event("thread.created", THREAD)
    spec.validate_stream_event("done", "[DONE]")
    with pytest.raises(AssertionError, match="assistant_id"):
        spec.validate_stream_event("thread.run.created", THREAD)
    broken = copy.deepcopy(RUN)
    broken["status"] = "sleeping"
    with pytest.raises(AssertionError):
        spec.validate_stream_event("thread.run.completed", broken)
    with pytest.raises(AssertionError, match="unknown Assistants stream event"):
        spec.validate_stream_event("thread.run.exploded", RUN)
    with pytest.raises(AssertionError):
        spec.validate_stream_event("done", "{}")
