"""The OpenAPI-spec validators accept what the spec allows and reject what it does not.

Later tests lean on `tests.harness.openapi_spec` to prove the server's responses and SSE frames
are OpenAI-shaped, so this module pins down that the validators are neither blind nor too strict.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from tests.harness import openapi_spec as spec

pytestmark = spec.requires_spec

NOW = 1_732_000_000

ASSISTANT: dict[str, Any] = {
    "id": "asst_abc123",
    "object": "assistant",
    "created_at": NOW,
    "name": "Math Tutor",
    "description": None,
    "model": "gpt-4o",
    "instructions": "You are a personal math tutor.",
    "tools": [
        {"type": "code_interpreter"},
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": False,
            },
        },
    ],
    "tool_resources": {"code_interpreter": {"file_ids": []}},
    "metadata": {"team": "math"},
    "temperature": 1.0,
    "top_p": 1.0,
    "response_format": "auto",
}

THREAD: dict[str, Any] = {
    "id": "thread_abc123",
    "object": "thread",
    "created_at": NOW,
    "tool_resources": {},
    "metadata": {},
}

MESSAGE: dict[str, Any] = {
    "id": "msg_abc123",
    "object": "thread.message",
    "created_at": NOW,
    "thread_id": "thread_abc123",
    "status": "completed",
    "incomplete_details": None,
    "completed_at": NOW + 2,
    "incomplete_at": None,
    "role": "assistant",
    "content": [{"type": "text", "text": {"value": "x = 3", "annotations": []}}],
    "assistant_id": "asst_abc123",
    "run_id": "run_abc123",
    "attachments": [],
    "metadata": {},
}

RUN: dict[str, Any] = {
    "id": "run_abc123",
    "object": "thread.run",
    "created_at": NOW,
    "thread_id": "thread_abc123",
    "assistant_id": "asst_abc123",
    "status": "requires_action",
    "required_action": {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ]
        },
    },
    "last_error": None,
    "expires_at": NOW + 600,
    "started_at": NOW + 1,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": None,
    "incomplete_details": None,
    "model": "gpt-4o",
    "instructions": "You are a personal math tutor.",
    "tools": [{"type": "code_interpreter"}],
    "metadata": {},
    "usage": None,
    "temperature": 1.0,
    "top_p": 1.0,
    "max_prompt_tokens": None,
    "max_completion_tokens": None,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": "auto",
}

RUN_STEP: dict[str, Any] = {
    "id": "step_abc123",
    "object": "thread.run.step",
    "created_at": NOW,
    "assistant_id": "asst_abc123",
    "thread_id": "thread_abc123",
    "run_id": "run_abc123",
    "type": "tool_calls",
    "status": "completed",
    "step_details": {
        "type": "tool_calls",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}', "output": "12C"},
            }
        ],
    },
    "last_error": None,
    "expired_at": None,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": NOW + 3,
    "metadata": {},
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
}

ERROR_BODY: dict[str, Any] = {
    "error": {
        "message": "No assistant found with id 'asst_missing'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


VALID: list[tuple[str, Any]] = [
    ("AssistantObject", ASSISTANT),
    ("ThreadObject", THREAD),
    ("MessageObject", MESSAGE),
    ("RunObject", RUN),
    ("RunStepObject", RUN_STEP),
    ("ListAssistantsResponse", _list([ASSISTANT])),
    ("ListMessagesResponse", _list([MESSAGE])),
    ("ListRunsResponse", _list([RUN])),
    ("ListRunStepsResponse", _list([RUN_STEP])),
    ("ListMessagesResponse", _list([])),  # empty page: first_id/last_id null (see RELAX_EMPTY_LIST_IDS)
    ("DeleteAssistantResponse", {"id": "asst_abc123", "object": "assistant.deleted", "deleted": True}),
    ("DeleteThreadResponse", {"id": "thread_abc123", "object": "thread.deleted", "deleted": True}),
    ("DeleteMessageResponse", {"id": "msg_abc123", "object": "thread.message.deleted", "deleted": True}),
    ("ErrorResponse", ERROR_BODY),
]


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    broken = copy.deepcopy(obj)
    del broken[key]
    return broken


def _with(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    broken = copy.deepcopy(obj)
    broken.update(changes)
    return broken


INVALID: list[tuple[str, str, Any]] = [
    ("assistant missing model", "AssistantObject", _without(ASSISTANT, "model")),
    ("assistant missing description", "AssistantObject", _without(ASSISTANT, "description")),
    ("assistant created_at string", "AssistantObject", _with(ASSISTANT, created_at="yesterday")),
    ("assistant wrong object", "AssistantObject", _with(ASSISTANT, object="assistants")),
    ("assistant unknown tool type", "AssistantObject", _with(ASSISTANT, tools=[{"type": "browser"}])),
    ("thread missing tool_resources", "ThreadObject", _without(THREAD, "tool_resources")),
    ("thread metadata value not string", "ThreadObject", _with(THREAD, metadata={"n": 1})),
    ("message missing status", "MessageObject", _without(MESSAGE, "status")),
    ("message bad role", "MessageObject", _with(MESSAGE, role="system")),
    (
        "message content text missing annotations",
        "MessageObject",
        _with(MESSAGE, content=[{"type": "text", "text": {"value": "hi"}}]),
    ),
    ("run missing required_action", "RunObject", _without(RUN, "required_action")),
    ("run bad status", "RunObject", _with(RUN, status="running")),
    ("run instructions null", "RunObject", _with(RUN, instructions=None)),
    ("run max_prompt_tokens below minimum", "RunObject", _with(RUN, max_prompt_tokens=10)),
    ("run tool_choice bad", "RunObject", _with(RUN, tool_choice="sometimes")),
    ("run usage incomplete", "RunObject", _with(RUN, usage={"prompt_tokens": 1})),
    ("run step missing usage", "RunStepObject", _without(RUN_STEP, "usage")),
    ("run step bad type", "RunStepObject", _with(RUN_STEP, type="thinking")),
    (
        "run step details mismatch",
        "RunStepObject",
        _with(RUN_STEP, step_details={"type": "message_creation", "message_creation": {}}),
    ),
    ("list missing has_more", "ListMessagesResponse", _without(_list([MESSAGE]), "has_more")),
    ("list item broken", "ListRunsResponse", _list([_without(RUN, "status")])),
    ("list first_id wrong type", "ListAssistantsResponse", _with(_list([ASSISTANT]), first_id=7)),
    (
        "delete deleted not bool",
        "DeleteAssistantResponse",
        {"id": "asst_abc123", "object": "assistant.deleted", "deleted": "yes"},
    ),
    ("delete wrong object", "DeleteThreadResponse", {"id": "thread_1", "object": "thread", "deleted": True}),
    ("delete missing id", "DeleteMessageResponse", {"object": "thread.message.deleted", "deleted": True}),
    ("error missing param", "ErrorResponse", {"error": {"message": "m", "type": "t", "code": None}}),
    ("error not wrapped", "ErrorResponse", ERROR_BODY["error"]),
]


# ---------------------------------------------------------------------------------------------
# Schema names and the converted spec


def test_convenience_schema_names_exist() -> None:
    names = set(spec.schema_names())
    assert [name for name in spec.SCHEMA_NAMES if name not in names] == []


def test_assistants_schemas_are_valid_2020_12() -> None:
    """Every schema reachable from the Assistants family is a valid 2020-12 schema after conversion."""
    schemas = spec._validation_spec()["components"]["schemas"]
    todo = [*spec.SCHEMA_NAMES, *spec.STREAM_EVENT_ROOTS]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        jsonschema.Draft202012Validator.check_schema(schemas[name])
        stack: list[Any] = [schemas[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                    todo.append(ref.rsplit("/", 1)[1])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    assert "RunObject" in seen and "MessageDeltaObject" in seen


def test_no_nullable_keyword_left() -> None:
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("#", spec._validation_spec())]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("nullable"), bool):
                found.append(path)
            stack.extend((f"{path}/{key}", value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}/{index}", value) for index, value in enumerate(node))
    assert found == []


# ---------------------------------------------------------------------------------------------
# validate_object


@pytest.mark.parametrize(("schema_name", "instance"), VALID, ids=[f"{name}-{i}" for i, (name, _) in enumerate(VALID)])
def test_valid_objects_pass(schema_name: str, instance: Any) -> None:
    spec.validate_object(schema_name, instance)


@pytest.mark.parametrize(("schema_name", "instance"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_objects_fail(schema_name: str, instance: Any) -> None:
    with pytest.raises(AssertionError):
        spec.validate_object(schema_name, instance)


def test_nullable_fields_accept_null() -> None:
    """Fields the spec marks with 3.0 `nullable: true` (or an allOf nullable marker) accept null."""
    spec.validate_object(
        "RunObject",
        _with(
            RUN,
            status="queued",
            required_action=None,
            expires_at=None,
            started_at=None,
            truncation_strategy=None,
            tool_choice=None,
            response_format=None,
            temperature=None,
            top_p=None,
            last_error=None,
            incomplete_details=None,
        ),
    )
    spec.validate_object("RunObject", _with(RUN, tool_choice={"type": "function", "function": {"name": "f"}}))
    spec.validate_object(
        "RunObject",
        _with(RUN, status="failed", last_error={"code": "server_error", "message": "boom"}, failed_at=NOW),
    )
    # ...but null does not loosen the non-null branch.
    with pytest.raises(AssertionError):
        spec.validate_object("RunObject", _with(RUN, truncation_strategy={"type": "sometimes"}))
    with pytest.raises(AssertionError):
        spec.validate_object("RunObject", _with(RUN, last_error={"code": "oops", "message": "boom"}))


def test_error_message_names_the_failing_path() -> None:
    broken = copy.deepcopy(RUN)
    broken["required_action"]["submit_tool_outputs"]["tool_calls"][0]["function"]["arguments"] = 42
    with pytest.raises(AssertionError) as info:
        spec.validate_object("RunObject", broken)
    text = str(info.value)
    assert "RunObject" in text
    assert "$.required_action" in text
    assert "tool_calls[0].function.arguments" in text


def test_unknown_schema_name_fails() -> None:
    with pytest.raises(AssertionError, match="unknown schema"):
        spec.validate_object("NoSuchObject", {})


# ---------------------------------------------------------------------------------------------
# Stream events

EXPECTED_EVENTS = {
    "thread.created",
    *(
        f"thread.run.{s}"
        for s in (
            "created",
            "queued",
            "in_progress",
            "requires_action",
            "completed",
            "incomplete",
            "failed",
            "cancelling",
            "cancelled",
            "expired",
        )
    ),
    *(
        f"thread.run.step.{s}"
        for s in ("created", "in_progress", "delta", "completed", "failed", "cancelled", "expired")
    ),
    *(f"thread.message.{s}" for s in ("created", "in_progress", "delta", "completed", "incomplete")),
    "error",
    "done",
}

MESSAGE_DELTA = {
    "id": "msg_abc123",
    "object": "thread.message.delta",
    "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "Hi", "annotations": []}}]},
}

STEP_DELTA = {
    "id": "step_abc123",
    "object": "thread.run.step.delta",
    "delta": {
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        }
    },
}


def test_spec_defines_exactly_the_assistants_events() -> None:
    assert set(spec.stream_event_names()) == EXPECTED_EVENTS


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("thread.created", THREAD),
        ("thread.run.created", _with(RUN, status="queued", required_action=None)),
        ("thread.run.requires_action", RUN),
        ("thread.run.completed", _with(RUN, status="completed", required_action=None, completed_at=NOW + 5)),
        ("thread.run.step.created", _with(RUN_STEP, status="in_progress", completed_at=None, usage=None)),
        ("thread.run.step.completed", RUN_STEP),
        ("thread.message.created", _with(MESSAGE, status="in_progress", content=[], completed_at=None)),
        ("thread.message.completed", MESSAGE),
        ("thread.message.delta", MESSAGE_DELTA),
        ("thread.run.step.delta", STEP_DELTA),
        (
            "thread.run.step.delta",
            {
                "id": "step_abc123",
                "object": "thread.run.step.delta",
                "delta": {
                    "step_details": {
                        "type": "tool_calls",
                        "tool_calls": [{"index": 0, "type": "function", "function": {"arguments": '{"ci'}}],
                    }
                },
            },
        ),
        ("error", ERROR_BODY["error"]),
        ("done", "[DONE]"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith(("thread", "error", "done")) else "",
)
def test_valid_stream_events_pass(event: str, data: Any) -> None:
    spec.validate_stream_event(event, data)


def test_stream_event_accepts_raw_json_text() -> None:
    spec.validate_stream_event("thread.message.delta", json.dumps(MESSAGE_DELTA))
    spec.validate_stream_event("thread.message.delta", json.dumps(MESSAGE_DELTA).encode())
    with pytest.raises(AssertionError, match="not JSON"):
        spec.validate_stream_event("thread.message.delta", "{not json")


@pytest.mark.parametrize(
    ("event", "data"),
    [
        # delta content part without its required index
        ("thread.message.delta", _with(MESSAGE_DELTA, delta={"content": [{"type": "text", "text": {"value": "Hi"}}]})),
        ("thread.message.delta", _with(MESSAGE_DELTA, object="thread.message")),
        ("thread.message.delta", _without(MESSAGE_DELTA, "delta")),
        ("thread.message.delta", _with(MESSAGE_DELTA, delta={"content": "Hi"})),
        # a full message where a delta is expected, and vice versa
        ("thread.message.delta", MESSAGE),
        ("thread.message.completed", MESSAGE_DELTA),
        (
            "thread.run.step.delta",
            _with(STEP_DELTA, delta={"step_details": {"type": "tool_calls", "tool_calls": [{"type": "function"}]}}),
        ),
        ("thread.run.step.delta", _with(STEP_DELTA, delta={"step_details": {"type": "thinking"}})),
        ("thread.run.created", _without(RUN, "status")),
        ("thread.created", _with(THREAD, object="thread.created")),
        ("error", {"message": "boom"}),
        ("done", "DONE"),
        ("done", {"done": True}),
    ],
)
def test_invalid_stream_events_fail(event: str, data: Any) -> None:
    with pytest.raises(AssertionError):
        spec.validate_stream_event(event, data)


@pytest.mark.parametrize("event", ["thread.run.delta", "thread.message.updated", "message", "", "DONE"])
def test_unknown_stream_event_fails(event: str) -> None:
    with pytest.raises(AssertionError, match="unknown Assistants stream event"):
        spec.validate_stream_event(event, {})


def test_thread_created_stray_enabled_field_is_ignored() -> None:
    """The spec's thread.created envelope declares `enabled`; it is not part of `data`."""
    assert spec.stream_event_data_schema("thread.created") == {"$ref": "#/components/schemas/ThreadObject"}
    spec.validate_stream_event("thread.created", THREAD)


# ---------------------------------------------------------------------------------------------
# Operations


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("post", "/assistants", "AssistantObject"),
        ("GET", "/assistants", "ListAssistantsResponse"),
        ("get", "/assistants/{assistant_id}", "AssistantObject"),
        ("delete", "/v1/assistants/asst_abc123", "DeleteAssistantResponse"),
        ("post", "/threads", "ThreadObject"),
        ("delete", "/threads/thread_abc", "DeleteThreadResponse"),
        ("post", "/threads/runs", "RunObject"),
        ("post", "/v1/threads/runs?x=1", "RunObject"),
        ("get", "/threads/thread_abc/messages", "ListMessagesResponse"),
        ("delete", "/threads/thread_abc/messages/msg_1", "DeleteMessageResponse"),
        ("post", "/threads/thread_abc/runs", "RunObject"),
        ("get", "/threads/thread_abc/runs", "ListRunsResponse"),
        ("post", "/threads/thread_abc/runs/run_1/cancel", "RunObject"),
        ("post", "/threads/thread_abc/runs/run_1/submit_tool_outputs", "RunObject"),
        ("get", "/threads/thread_abc/runs/run_1/steps", "ListRunStepsResponse"),
        ("get", "/threads/thread_abc/runs/run_1/steps/step_1", "RunStepObject"),
    ],
)
def test_operation_response_schema(method: str, path: str, expected: str) -> None:
    assert spec.operation_response_schema(method, path) == expected


def test_operation_response_schema_unknown() -> None:
    with pytest.raises(KeyError):
        spec.operation_response_schema("get", "/nowhere")
    with pytest.raises(KeyError):
        spec.operation_response_schema("put", "/assistants")


def test_validate_response() -> None:
    spec.validate_response("post", "/v1/threads/thread_abc123/runs", RUN)
    with pytest.raises(AssertionError):
        spec.validate_response("post", "/v1/threads/thread_abc123/runs", THREAD)


def test_implemented_operations() -> None:
    operations = spec.implemented_operations()
    ids = {operation_id for _, _, operation_id in operations}
    assert {
        "listAssistants",
        "createAssistant",
        "getAssistant",
        "modifyAssistant",
        "deleteAssistant",
        "createThread",
        "createThreadAndRun",
        "getThread",
        "modifyThread",
        "deleteThread",
        "listMessages",
        "createMessage",
        "getMessage",
        "modifyMessage",
        "deleteMessage",
        "listRuns",
        "createRun",
        "getRun",
        "modifyRun",
        "cancelRun",
        "listRunSteps",
        "getRunStep",
        "submitToolOuputsToRun",
    } <= ids
    assert all(path.startswith(("/assistants", "/threads")) for _, path, _ in operations)
    assert all(method in spec.HTTP_METHODS for method, _, _ in operations)
    for method, path, _ in operations:
        assert spec.operation_response_schema(method, path) in spec.SCHEMA_NAMES
