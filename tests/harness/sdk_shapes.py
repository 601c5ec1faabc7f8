"""Response and event shapes checked with the official ``openai`` SDK's generated pydantic types:
what :mod:`.openapi_spec` falls back to when OpenAI's spec is not beside the repository (a plain
clone), so that every response and event is still validated. Strict validation: a missing field
the SDK requires, a wrong type or an unknown enum value fails; the SDK is looser than the spec
on some required fields (it types them optional), which only the spec checks catch.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal, get_args, get_origin

import pydantic

from .openapi_spec import (
    _MAX_LISTED_ERRORS,
    ASSISTANT_OBJECT,
    DELETE_ASSISTANT_RESPONSE,
    DELETE_MESSAGE_RESPONSE,
    DELETE_THREAD_RESPONSE,
    ERROR,
    ERROR_RESPONSE,
    LIST_ASSISTANTS_RESPONSE,
    LIST_MESSAGES_RESPONSE,
    LIST_RUN_STEPS_RESPONSE,
    LIST_RUNS_RESPONSE,
    MESSAGE_DELTA_OBJECT,
    MESSAGE_OBJECT,
    RUN_OBJECT,
    RUN_STEP_DELTA_OBJECT,
    RUN_STEP_OBJECT,
    THREAD_OBJECT,
    _normalise_path,
    _short,
    _template_regex,
    spec_path,
)


def _list_of(item: type[pydantic.BaseModel]) -> type[pydantic.BaseModel]:
    """``{object: "list", data: [item], first_id, last_id, has_more}`` with every item validated."""
    return pydantic.create_model(
        f"ListOf{item.__name__}",
        object=(Literal["list"], ...),
        data=(list[item], ...),
        first_id=(str | None, ...),
        last_id=(str | None, ...),
        has_more=(bool, ...),
    )


def _page_of(item: type[pydantic.BaseModel], object_: str, **extra: Any) -> type[pydantic.BaseModel]:
    """A vector store page: ``{object: <object_>, data: [item], has_more, next_page}``."""
    return pydantic.create_model(
        f"PageOf{item.__name__}",
        object=(Literal[object_], ...),  # type: ignore[valid-type]
        data=(list[item], ...),
        has_more=(bool, ...),
        next_page=(str | None, ...),
        **extra,
    )


@cache
def sdk_types() -> dict[str, type[pydantic.BaseModel]]:
    """Spec component schema name -> SDK model that validates the same object."""
    from openai.types import FileDeleted, FileObject, Model, Upload, VectorStore, VectorStoreDeleted
    from openai.types.beta import Assistant, AssistantDeleted, Thread, ThreadDeleted
    from openai.types.beta.threads import Message, MessageDeleted, MessageDeltaEvent, Run
    from openai.types.beta.threads.runs import RunStep, RunStepDeltaEvent
    from openai.types.shared import ErrorObject
    from openai.types.uploads import UploadPart
    from openai.types.vector_store_search_response import VectorStoreSearchResponse
    from openai.types.vector_stores import (
        VectorStoreFile,
        VectorStoreFileBatch,
        VectorStoreFileDeleted,
    )
    from openai.types.vector_stores.file_content_response import FileContentResponse

    error_response = pydantic.create_model("ErrorResponse", error=(ErrorObject, ...))
    list_models = pydantic.create_model("ListModelsResponse", object=(Literal["list"], ...), data=(list[Model], ...))
    return {
        ASSISTANT_OBJECT: Assistant,
        THREAD_OBJECT: Thread,
        MESSAGE_OBJECT: Message,
        MESSAGE_DELTA_OBJECT: MessageDeltaEvent,
        RUN_OBJECT: Run,
        RUN_STEP_OBJECT: RunStep,
        RUN_STEP_DELTA_OBJECT: RunStepDeltaEvent,
        LIST_ASSISTANTS_RESPONSE: _list_of(Assistant),
        LIST_MESSAGES_RESPONSE: _list_of(Message),
        LIST_RUNS_RESPONSE: _list_of(Run),
        LIST_RUN_STEPS_RESPONSE: _list_of(RunStep),
        DELETE_ASSISTANT_RESPONSE: AssistantDeleted,
        DELETE_THREAD_RESPONSE: ThreadDeleted,
        DELETE_MESSAGE_RESPONSE: MessageDeleted,
        ERROR: ErrorObject,
        ERROR_RESPONSE: error_response,
        "Model": Model,
        "ListModelsResponse": list_models,
        "OpenAIFile": FileObject,
        "ListFilesResponse": _list_of(FileObject),
        "DeleteFileResponse": FileDeleted,
        "Upload": Upload,
        "UploadPart": UploadPart,
        "VectorStoreObject": VectorStore,
        "ListVectorStoresResponse": _list_of(VectorStore),
        "DeleteVectorStoreResponse": VectorStoreDeleted,
        "VectorStoreFileObject": VectorStoreFile,
        "ListVectorStoreFilesResponse": _list_of(VectorStoreFile),
        "DeleteVectorStoreFileResponse": VectorStoreFileDeleted,
        "VectorStoreFileBatchObject": VectorStoreFileBatch,
        "VectorStoreFileContentResponse": _page_of(FileContentResponse, "vector_store.file_content.page"),
        "VectorStoreSearchResultsPage": _page_of(
            VectorStoreSearchResponse, "vector_store.search_results.page", search_query=(list[str], ...)
        ),
    }


# (method, path template) -> schema name of the 200 response, for validate_response without the spec.
SDK_OPERATIONS: dict[tuple[str, str], str] = {
    ("get", "/assistants"): LIST_ASSISTANTS_RESPONSE,
    ("post", "/assistants"): ASSISTANT_OBJECT,
    ("get", "/assistants/{assistant_id}"): ASSISTANT_OBJECT,
    ("post", "/assistants/{assistant_id}"): ASSISTANT_OBJECT,
    ("delete", "/assistants/{assistant_id}"): DELETE_ASSISTANT_RESPONSE,
    ("post", "/threads"): THREAD_OBJECT,
    ("post", "/threads/runs"): RUN_OBJECT,
    ("get", "/threads/{thread_id}"): THREAD_OBJECT,
    ("post", "/threads/{thread_id}"): THREAD_OBJECT,
    ("delete", "/threads/{thread_id}"): DELETE_THREAD_RESPONSE,
    ("get", "/threads/{thread_id}/messages"): LIST_MESSAGES_RESPONSE,
    ("post", "/threads/{thread_id}/messages"): MESSAGE_OBJECT,
    ("get", "/threads/{thread_id}/messages/{message_id}"): MESSAGE_OBJECT,
    ("post", "/threads/{thread_id}/messages/{message_id}"): MESSAGE_OBJECT,
    ("delete", "/threads/{thread_id}/messages/{message_id}"): DELETE_MESSAGE_RESPONSE,
    ("get", "/threads/{thread_id}/runs"): LIST_RUNS_RESPONSE,
    ("post", "/threads/{thread_id}/runs"): RUN_OBJECT,
    ("get", "/threads/{thread_id}/runs/{run_id}"): RUN_OBJECT,
    ("post", "/threads/{thread_id}/runs/{run_id}"): RUN_OBJECT,
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"): RUN_OBJECT,
    ("post", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs"): RUN_OBJECT,
    ("get", "/threads/{thread_id}/runs/{run_id}/steps"): LIST_RUN_STEPS_RESPONSE,
    ("get", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}"): RUN_STEP_OBJECT,
    ("get", "/models"): "ListModelsResponse",
    ("get", "/models/{model}"): "Model",
    ("get", "/files"): "ListFilesResponse",
    ("post", "/files"): "OpenAIFile",
    ("get", "/files/{file_id}"): "OpenAIFile",
    ("delete", "/files/{file_id}"): "DeleteFileResponse",
    ("post", "/uploads"): "Upload",
    ("post", "/uploads/{upload_id}/parts"): "UploadPart",
    ("post", "/uploads/{upload_id}/complete"): "Upload",
    ("post", "/uploads/{upload_id}/cancel"): "Upload",
    ("get", "/vector_stores"): "ListVectorStoresResponse",
    ("post", "/vector_stores"): "VectorStoreObject",
    ("get", "/vector_stores/{vector_store_id}"): "VectorStoreObject",
    ("post", "/vector_stores/{vector_store_id}"): "VectorStoreObject",
    ("delete", "/vector_stores/{vector_store_id}"): "DeleteVectorStoreResponse",
    ("post", "/vector_stores/{vector_store_id}/search"): "VectorStoreSearchResultsPage",
    ("get", "/vector_stores/{vector_store_id}/files"): "ListVectorStoreFilesResponse",
    ("post", "/vector_stores/{vector_store_id}/files"): "VectorStoreFileObject",
    ("get", "/vector_stores/{vector_store_id}/files/{file_id}"): "VectorStoreFileObject",
    ("post", "/vector_stores/{vector_store_id}/files/{file_id}"): "VectorStoreFileObject",
    ("delete", "/vector_stores/{vector_store_id}/files/{file_id}"): "DeleteVectorStoreFileResponse",
    ("get", "/vector_stores/{vector_store_id}/files/{file_id}/content"): "VectorStoreFileContentResponse",
    ("post", "/vector_stores/{vector_store_id}/file_batches"): "VectorStoreFileBatchObject",
    ("get", "/vector_stores/{vector_store_id}/file_batches/{batch_id}"): "VectorStoreFileBatchObject",
    ("post", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel"): "VectorStoreFileBatchObject",
    ("get", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files"): "ListVectorStoreFilesResponse",
}


def operation_schema(method: str, path: str, status: str = "200") -> str:
    if str(status) != "200":
        raise AssertionError(f"{method.upper()} {path}: without the spec only 200 responses can be validated")
    method = method.lower()
    path = _normalise_path(path)
    matches = [
        template
        for (verb, template) in SDK_OPERATIONS
        if verb == method and (template == path or _template_regex(template).match(path))
    ]
    if not matches:
        raise AssertionError(
            f"{method.upper()} {path}: no SDK type is known for this operation (add it to SDK_OPERATIONS)"
        )
    template = max(matches, key=lambda t: sum(1 for seg in t.split("/") if seg and not seg.startswith("{")))
    return SDK_OPERATIONS[(method, template)]


def _format_pydantic(error: pydantic.ValidationError, what: str, instance: Any) -> str:
    lines = [f"{what}: {error.error_count()} validation error(s) against the openai SDK's types"]
    for item in error.errors()[:_MAX_LISTED_ERRORS]:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        lines.append(f"  - {path}: {item['msg']} (input: {_short(item.get('input'), 120)})")
    if error.error_count() > _MAX_LISTED_ERRORS:
        lines.append(f"  ... and {error.error_count() - _MAX_LISTED_ERRORS} more")
    lines.append(f"instance: {_short(instance, 600)}")
    return "\n".join(lines)


def validate_object(schema_name: str, instance: Any) -> None:
    model = sdk_types().get(schema_name)
    if model is None:
        raise AssertionError(
            f"unknown schema {schema_name!r}: no openai SDK type is mapped to it "
            f"(the spec is not at {spec_path()}; known: {sorted(sdk_types())})"
        )
    try:
        model.model_validate(instance, strict=True)
    except pydantic.ValidationError as exc:
        raise AssertionError(_format_pydantic(exc, f"{schema_name} ({model.__name__})", instance)) from None


@cache
def _stream_events() -> tuple[pydantic.TypeAdapter, dict[str, type[pydantic.BaseModel]]]:
    from openai.types.beta import AssistantStreamEvent

    union = AssistantStreamEvent
    while get_origin(union) is Annotated:  # Annotated[Union[...], PropertyInfo(...)]
        union = get_args(union)[0]
    members: dict[str, type[pydantic.BaseModel]] = {}
    for member in get_args(union):
        for name in get_args(member.model_fields["event"].annotation):
            members[name] = member
    return pydantic.TypeAdapter(AssistantStreamEvent), members


def validate_stream_event(event: str, data: Any) -> None:
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if event == "done":
        if data != "[DONE]":
            raise AssertionError(f"event 'done': data must be '[DONE]', got {_short(data)}")
        return
    adapter, members = _stream_events()
    if event not in members:
        raise AssertionError(f"unknown Assistants stream event {event!r}; the SDK defines {sorted(members)}")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise AssertionError(f"event {event!r}: data is not JSON: {_short(data)}") from exc
    try:
        adapter.validate_python({"event": event, "data": data}, strict=True)
    except pydantic.ValidationError:
        # The union is not discriminated, so its errors cover every branch; report the event's own.
        try:
            members[event].model_validate({"event": event, "data": data}, strict=True)
        except pydantic.ValidationError as exc:
            raise AssertionError(_format_pydantic(exc, f"event {event!r}", data)) from None
        raise
