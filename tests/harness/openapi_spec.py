"""Validate API responses and SSE events against OpenAI's own OpenAPI 3.1 description.

The spec (``openapi.yaml`` from openai/openai-openapi) is the authority on response shapes
and on the names of the Assistants streaming events. It lives outside the repository: set
``OPENAI_OPENAPI_SPEC`` to its path, or place it at ``<repo root>/../shared/openai-openapi/openapi.yaml``.

Public helpers
--------------
``validate_object(schema_name, instance)``
    Validate against ``components.schemas[schema_name]`` with every ``$ref`` resolved.
``validate_stream_event(event, data)``
    Validate an SSE frame's ``data`` against the schema the spec gives that event name.
``validate_response(method, path, body)``
    Validate a JSON body against the 200 response schema of an operation.
``operation_response_schema(method, path)``
    Name of the component schema an operation's 200 response refers to.
``implemented_operations()``
    ``(method, path, operationId)`` for every ``/assistants*`` and ``/threads*`` operation.
``stream_event_names()``
    Every SSE event name the spec defines for the Assistants stream.

Spec quirks handled here
------------------------
* About 111 leftover OpenAPI 3.0 ``nullable: true`` keywords, which JSON Schema 2020-12
  ignores. A deep copy of the spec is rewritten so that each of them really admits ``null``:
  ``type: X`` becomes ``type: [X, "null"]`` (and ``null`` joins any ``enum``); a schema built
  from ``$ref``/``allOf``/``oneOf``/``anyOf`` is wrapped as ``anyOf: [<schema>, {type: null}]``;
  and an ``allOf`` member that is only ``{nullable: true}`` (as in ``RunObject.tool_choice``
  and ``RunObject.truncation_strategy``) makes the whole ``allOf`` nullable.
* The ``thread.created`` branch of ``ThreadStreamEvent`` declares a stray ``enabled`` property
  (copied from a Realtime schema). It sits on the event envelope, next to ``event`` and
  ``data``, and is not required, so it is ignored: only ``data`` is validated, against the
  branch's ``data`` schema (``ThreadObject``).
* ``first_id``/``last_id`` of the ``List*Response`` schemas are required strings in the spec,
  but the real API sends ``null`` for both on an empty page; they are made nullable
  (``RELAX_EMPTY_LIST_IDS``). Everything else is validated as the spec words it, e.g.
  ``RunObject.instructions`` is a plain string (the spec's own example shows ``null``; the
  official SDKs type it ``str``), so a run with no instructions must carry ``""``.
* OpenAPI 3.0 boolean ``exclusiveMinimum``/``exclusiveMaximum`` (fine-tuning schemas only)
  are turned into the 2020-12 numeric form.
* Spec schemas rarely set ``additionalProperties: false``, so extra fields are not rejected.

Without the spec (SDK fallback)
-------------------------------
When the spec file is absent (``OPENAI_OPENAPI_SPEC`` pointing at a missing file counts as
absent), ``validate_object``, ``validate_stream_event`` and ``validate_response`` validate with
the installed ``openai`` SDK's own generated pydantic types instead (strict ``model_validate``, so a
missing required field or a wrong type still fails): see ``SDK_TYPES``, ``SDK_OPERATIONS`` and
``tests/harness/sdk_shapes.py``. Checks about the spec itself are marked ``requires_spec`` and skip.

Parsing the 3 MB YAML takes over a second even with libyaml, so the parsed document is cached as
JSON under ``<repo>/.cache/openai-openapi/`` keyed by the spec file's size and mtime.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_PATH = ROOT.parent / "shared" / "openai-openapi" / "openapi.yaml"
CACHE_DIR = ROOT / ".cache" / "openai-openapi"
SPEC_URI = "urn:openai:openapi"

# Component schema names (all verified to exist in the spec by tests/test_openapi_spec.py).
ASSISTANT_OBJECT = "AssistantObject"
THREAD_OBJECT = "ThreadObject"
MESSAGE_OBJECT = "MessageObject"
MESSAGE_DELTA_OBJECT = "MessageDeltaObject"
RUN_OBJECT = "RunObject"
RUN_STEP_OBJECT = "RunStepObject"
RUN_STEP_DELTA_OBJECT = "RunStepDeltaObject"
LIST_ASSISTANTS_RESPONSE = "ListAssistantsResponse"
LIST_MESSAGES_RESPONSE = "ListMessagesResponse"
LIST_RUNS_RESPONSE = "ListRunsResponse"
LIST_RUN_STEPS_RESPONSE = "ListRunStepsResponse"
DELETE_ASSISTANT_RESPONSE = "DeleteAssistantResponse"
DELETE_THREAD_RESPONSE = "DeleteThreadResponse"
DELETE_MESSAGE_RESPONSE = "DeleteMessageResponse"
ERROR = "Error"
ERROR_RESPONSE = "ErrorResponse"

SCHEMA_NAMES: tuple[str, ...] = (
    ASSISTANT_OBJECT,
    THREAD_OBJECT,
    MESSAGE_OBJECT,
    MESSAGE_DELTA_OBJECT,
    RUN_OBJECT,
    RUN_STEP_OBJECT,
    RUN_STEP_DELTA_OBJECT,
    LIST_ASSISTANTS_RESPONSE,
    LIST_MESSAGES_RESPONSE,
    LIST_RUNS_RESPONSE,
    LIST_RUN_STEPS_RESPONSE,
    DELETE_ASSISTANT_RESPONSE,
    DELETE_THREAD_RESPONSE,
    DELETE_MESSAGE_RESPONSE,
    ERROR,
    ERROR_RESPONSE,
)

# Roots walked to collect the SSE event names. AssistantStreamEvent is the union of the others;
# they are listed too so that an event missing from the union is still found.
STREAM_EVENT_ROOTS: tuple[str, ...] = (
    "AssistantStreamEvent",
    "ThreadStreamEvent",
    "RunStreamEvent",
    "RunStepStreamEvent",
    "MessageStreamEvent",
    "ErrorEvent",
    "DoneEvent",
)

ASSISTANTS_PATH_PREFIXES: tuple[str, ...] = ("/assistants", "/threads")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_LISTED_ERRORS = 20


# --------------------------------------------------------------------------------------------
# Loading


def spec_path() -> Path:
    """Where the spec is: ``$OPENAI_OPENAPI_SPEC`` or ``<repo>/../shared/openai-openapi/openapi.yaml``."""
    env = os.environ.get("OPENAI_OPENAPI_SPEC")
    return Path(env).expanduser().resolve() if env else DEFAULT_SPEC_PATH


def spec_available() -> bool:
    return spec_path().is_file()


def spec_missing_reason() -> str:
    return (
        f"OpenAI's OpenAPI spec is not at {spec_path()}; set OPENAI_OPENAPI_SPEC to a copy of openapi.yaml "
        "from github.com/openai/openai-openapi to run these checks"
    )


# Marks a test (or, as ``pytestmark``, a module) that is about the spec itself: it skips without it.
requires_spec = pytest.mark.skipif(not spec_available(), reason=spec_missing_reason())


def _cache_file(path: Path) -> Path:
    st = path.stat()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return CACHE_DIR / f"openapi-{digest}-{st.st_size}-{st.st_mtime_ns}.json"


def _parse_yaml(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=loader)  # noqa: S506 - a SafeLoader
    # Round-trip through JSON so the in-memory document is identical whether it came from the
    # YAML or from the JSON cache (YAML yields a few datetime.date values in examples).
    return json.loads(json.dumps(document, default=str))


@cache
def _load_spec_cached(path_str: str) -> dict[str, Any]:
    path = Path(path_str)
    if not path.is_file():
        raise FileNotFoundError(
            f"OpenAI OpenAPI spec not found at {path}; set OPENAI_OPENAPI_SPEC to the path of openapi.yaml"
        )
    try:
        cached = _cache_file(path)
        if cached.is_file():
            with open(cached, encoding="utf-8") as handle:
                return json.load(handle)
    except (OSError, ValueError):
        pass
    document = _parse_yaml(path)
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        target = _cache_file(path)
        for stale in CACHE_DIR.glob(target.name.rsplit("-", 2)[0] + "-*.json"):
            if stale != target:
                stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only checkout still works, only slower
    return document


def load_spec() -> dict[str, Any]:
    """The spec exactly as published (parsed once per process; do not mutate it)."""
    return _load_spec_cached(str(spec_path()))


# --------------------------------------------------------------------------------------------
# OpenAPI 3.0 `nullable` -> JSON Schema 2020-12

_ANNOTATION_KEYS = frozenset(
    {"description", "title", "default", "example", "examples", "deprecated", "readOnly", "writeOnly"}
)
_COMPOSITE_KEYS = ("$ref", "allOf", "oneOf", "anyOf", "not", "if")


def _is_annotation(key: str) -> bool:
    return key in _ANNOTATION_KEYS or key.startswith("x-")


def _is_nullable_marker(node: Any) -> bool:
    """``{nullable: true}`` with nothing but annotations beside it (used as an ``allOf`` member)."""
    return (
        isinstance(node, dict)
        and node.get("nullable") is True
        and all(key == "nullable" or _is_annotation(key) for key in node)
    )


def _make_nullable(node: dict[str, Any]) -> dict[str, Any]:
    if "type" in node and not any(key in node for key in _COMPOSITE_KEYS):
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if "null" not in types:
            node["type"] = [*types, "null"]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        return node
    annotations = {key: value for key, value in node.items() if _is_annotation(key)}
    core = {key: value for key, value in node.items() if not _is_annotation(key)}
    if not core:  # a bare {nullable: true}: anything, null included
        return node
    return {**annotations, "anyOf": [core, {"type": "null"}]}


def _convert_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    nullable = False
    if isinstance(node.get("allOf"), list) and any(_is_nullable_marker(m) for m in node["allOf"]):
        nullable = True
        members = [m for m in node["allOf"] if not _is_nullable_marker(m)]
        if members:
            node["allOf"] = members
        else:
            del node["allOf"]
    if isinstance(node.get("nullable"), bool):
        nullable = node.pop("nullable") or nullable
    node = {key: _convert_nullable(value) for key, value in node.items()}
    return _make_nullable(node) if nullable else node


def _convert_exclusive_bounds(node: Any) -> Any:
    """OpenAPI 3.0 boolean ``exclusiveMinimum``/``exclusiveMaximum`` -> 2020-12 numeric form (in place)."""
    if isinstance(node, list):
        for item in node:
            _convert_exclusive_bounds(item)
    elif isinstance(node, dict):
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if (
                isinstance(node.get(exclusive), bool)
                and node.pop(exclusive)
                and isinstance(node.get(bound), int | float)
            ):
                node[exclusive] = node.pop(bound)
        for value in node.values():
            _convert_exclusive_bounds(value)
    return node


def _relax_empty_list_ids(schemas: dict[str, Any]) -> None:
    """Let ``first_id``/``last_id`` of the ``List*Response`` schemas be null.

    The spec types them as required strings, but OpenAI returns ``null`` for both on an empty
    page (``{"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}``).
    Forcing a string there would push the server into inventing ids, so null is accepted.
    """
    for name, schema in schemas.items():
        if not (name.startswith("List") and name.endswith("Response")):
            continue
        properties = schema.get("properties", {})
        for key in ("first_id", "last_id"):
            prop = properties.get(key)
            if isinstance(prop, dict) and prop.get("type") == "string":
                properties[key] = _make_nullable(dict(prop))


# Set to False to validate list responses exactly as the spec words them.
RELAX_EMPTY_LIST_IDS = True


@cache
def _validation_spec() -> dict[str, Any]:
    """Deep copy of the spec with 3.0-isms rewritten; the document the validators resolve against."""
    document = _convert_exclusive_bounds(_convert_nullable(copy.deepcopy(load_spec())))
    if RELAX_EMPTY_LIST_IDS:
        _relax_empty_list_ids(document["components"]["schemas"])
    return document


@cache
def _registry() -> Registry:
    resource = DRAFT202012.create_resource(_validation_spec())
    return Registry().with_resource(SPEC_URI, resource)


# --------------------------------------------------------------------------------------------
# Validation


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(*tokens: str | int) -> str:
    return "#/" + "/".join(_pointer_escape(str(token)) for token in tokens)


@cache
def _validator_for_pointer(pointer: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator({"$ref": SPEC_URI + pointer}, registry=_registry())


def schema_names() -> list[str]:
    return list(load_spec()["components"]["schemas"])


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_error(error: jsonschema.ValidationError) -> str:
    path = error.json_path
    message = error.message
    if len(message) > 300:
        message = message[:297] + "..."
    schema_path = "/".join(str(p) for p in error.absolute_schema_path)
    return f"{path}: {message}  [schema: {schema_path}]"


def _check(validator: jsonschema.protocols.Validator, instance: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors)
    lines = [f"{what}: {len(errors)} validation error(s)", f"best match -> {_format_error(best)}"]
    if best.context:
        # oneOf/anyOf: show why each branch failed (deepest first), which is usually the useful bit.
        for sub in sorted(best.context, key=lambda e: -len(e.absolute_path))[:_MAX_LISTED_ERRORS]:
            lines.append(f"    branch {list(sub.relative_schema_path)[:1]} -> {_format_error(sub)}")
    lines.append("all errors:")
    for error in errors[:_MAX_LISTED_ERRORS]:
        lines.append(f"  - {_format_error(error)}")
    if len(errors) > _MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(errors) - _MAX_LISTED_ERRORS} more")
    lines.append(f"instance: {_short(instance, 600)}")
    raise AssertionError("\n".join(lines))


def validate_object(schema_name: str, instance: Any) -> None:
    """Assert that ``instance`` matches ``components.schemas[schema_name]`` (AssertionError if not).

    Without the spec, ``instance`` is validated with the SDK type ``SDK_TYPES`` maps the name to.
    """
    if not spec_available():
        from . import sdk_shapes  # it imports helpers of this module

        sdk_shapes.validate_object(schema_name, instance)
        return
    if schema_name not in load_spec()["components"]["schemas"]:
        raise AssertionError(f"unknown schema {schema_name!r} in {spec_path()}")
    _check(_validator_for_pointer(_pointer("components", "schemas", schema_name)), instance, schema_name)


# --------------------------------------------------------------------------------------------
# Streaming events


def _resolve_local(document: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local refs are supported, got {ref!r}")
    node: Any = document
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _event_names(event_schema: dict[str, Any]) -> list[str]:
    if "const" in event_schema:
        return [event_schema["const"]]
    return [name for name in event_schema.get("enum", []) if isinstance(name, str)]


@cache
def _stream_event_pointers() -> dict[str, str]:
    """Event name -> JSON pointer (into the validation spec) of that event's ``data`` schema."""
    document = _validation_spec()
    found: dict[str, str] = {}
    seen: set[str] = set()

    def walk(pointer: str) -> None:
        if pointer in seen:
            return
        seen.add(pointer)
        node = _resolve_local(document, pointer)
        if "$ref" in node:
            walk(node["$ref"])
        for key in ("oneOf", "anyOf"):
            for index in range(len(node.get(key, []))):
                walk(f"{pointer}/{key}/{index}")
        properties = node.get("properties", {})
        if "event" in properties and "data" in properties:
            # Envelope-level extras (the stray `enabled` on thread.created) are ignored on purpose.
            for name in _event_names(properties["event"]):
                found.setdefault(name, f"{pointer}/properties/data")

    for root in STREAM_EVENT_ROOTS:
        if root in document["components"]["schemas"]:
            walk(_pointer("components", "schemas", root))
    return found


def stream_event_names() -> list[str]:
    """Every SSE event name the spec defines for the Assistants stream, in spec order."""
    return list(_stream_event_pointers())


def stream_event_data_schema(event: str) -> dict[str, Any]:
    """The (nullable-converted) schema of ``data`` for ``event``; AssertionError if unknown."""
    pointers = _stream_event_pointers()
    if event not in pointers:
        raise AssertionError(f"unknown Assistants stream event {event!r}; the spec defines {sorted(pointers)}")
    return _resolve_local(_validation_spec(), pointers[event])


def validate_stream_event(event: str, data: Any) -> None:
    """Assert that an SSE frame is valid: ``event`` is a spec event name and ``data`` matches its schema.

    ``data`` is the decoded JSON payload; a ``str``/``bytes`` payload is JSON-decoded first
    (except for ``done``, whose data is the literal string ``[DONE]``).
    """
    if not spec_available():
        from . import sdk_shapes  # it imports helpers of this module

        sdk_shapes.validate_stream_event(event, data)
        return
    pointers = _stream_event_pointers()
    if event not in pointers:
        raise AssertionError(f"unknown Assistants stream event {event!r}; the spec defines {sorted(pointers)}")
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str) and event != "done":
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise AssertionError(f"event {event!r}: data is not JSON: {_short(data)}") from exc
    _check(_validator_for_pointer(pointers[event]), data, f"event {event!r} data")


# --------------------------------------------------------------------------------------------
# Operations


def _normalise_path(path: str) -> str:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if path.startswith("/v1/"):
        path = path[3:]
    return path.rstrip("/") or "/"


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    body = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{body}$")


def find_operation_path(path: str) -> str:
    """The spec path template for ``path`` (a template, or a concrete path such as ``/v1/threads/thread_1``)."""
    paths = load_spec()["paths"]
    path = _normalise_path(path)
    if path in paths:
        return path
    matches = [template for template in paths if _template_regex(template).match(path)]
    if not matches:
        raise KeyError(f"no operation path in the spec matches {path!r}")
    # Prefer the most literal template: /threads/runs beats /threads/{thread_id}.
    return max(matches, key=lambda t: sum(1 for seg in t.split("/") if seg and not seg.startswith("{")))


def operation(method: str, path: str) -> dict[str, Any]:
    template = find_operation_path(path)
    item = load_spec()["paths"][template]
    op = item.get(method.lower())
    if op is None:
        raise KeyError(f"the spec defines no {method.upper()} {template}")
    return op


def operation_response_schema(method: str, path: str, status: str = "200") -> str | None:
    """Component schema name of an operation's JSON response (``("post", "/assistants")`` -> ``"AssistantObject"``).

    ``None`` if the response has no JSON body or an inline (unnamed) schema; KeyError if the
    operation is not in the spec.
    """
    response = operation(method, path).get("responses", {}).get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        response = _resolve_local(load_spec(), response["$ref"])
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    prefix = "#/components/schemas/"
    return ref[len(prefix) :] if ref.startswith(prefix) else None


def validate_response(method: str, path: str, body: Any, status: str = "200") -> None:
    """Assert that ``body`` matches the JSON schema of ``method path``'s ``status`` response."""
    if not spec_available():
        from . import sdk_shapes  # it imports helpers of this module

        sdk_shapes.validate_object(sdk_shapes.operation_schema(method, path, status), body)
        return
    name = operation_response_schema(method, path, status)
    if name is None:
        raise AssertionError(f"{method.upper()} {path}: the spec names no JSON schema for status {status}")
    validate_object(name, body)


def implemented_operations(prefixes: tuple[str, ...] = ASSISTANTS_PATH_PREFIXES) -> list[tuple[str, str, str]]:
    """``(method, path, operationId)`` for each spec operation under ``/assistants`` or ``/threads``."""
    result: list[tuple[str, str, str]] = []
    for path, item in load_spec()["paths"].items():
        if not any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes):
            continue
        for method in HTTP_METHODS:
            if method in item:
                result.append((method, path, item[method].get("operationId", "")))
    return result


def wire(sdk_object: Any) -> Any:
    """An SDK object as the server sent it: fields the response did not contain stay out."""
    return sdk_object.model_dump(mode="json", exclude_unset=True)
