"""What AWS would bill, counted where the local stack plays AWS (``make cost`` turns it on).

With ``LOCAL_METER=1`` each of the local stack's two processes counts what happens in it: API
Gateway requests (the gateway), Lambda invocations and their duration (the local Lambda
runtime), and every AWS call the functions make (and the emulated Step Functions' service
integrations), through botocore event hooks on each client the process creates. The app is not
touched: the hooks ask DynamoDB for ``ReturnConsumedCapacity`` and read what it answers, and
read S3, S3 Vectors and AgentCore requests as they go.

``GET /_local/meter`` on the gateway answers both processes' counts together, ``DELETE`` resets
them (:func:`http_app` serves the emulated AWS's share on its port).

DynamoDB's units: DynamoDB Local reports ``ConsumedCapacity`` as DynamoDB does (1 WRU per KB
written, transactional x2, 1 RRU per 4 KB read, eventually consistent half), with two
differences from AWS's documented rules corrected here: a Query or Scan that finds nothing
reports 0 (DynamoDB charges its minimum, 1 RRU strongly consistent and 0.5 eventually), and a
write whose condition fails reports nothing (DynamoDB charges it at least 1 WRU, 2 per item of a
cancelled transaction). Those are counted at the minimum, since the item's size is unknown here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

PATH = "/_local/meter"
ENABLED = os.environ.get("LOCAL_METER", "") not in ("", "0", "false")

# S3's request classes (https://aws.amazon.com/s3/pricing/): PUT, COPY, POST, LIST and the
# multipart calls are tier 1; GET, HEAD and the rest tier 2; DELETE and abort are free.
S3_TIER1 = {
    "PutObject",
    "CopyObject",
    "UploadPart",
    "UploadPartCopy",
    "CreateMultipartUpload",
    "CompleteMultipartUpload",
    "ListObjects",
    "ListObjectsV2",
    "ListParts",
    "ListMultipartUploads",
    "ListBuckets",
}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
DYNAMODB_QUERIES = {"Query", "Scan"}


class Meter:
    """Counters of one process. Thread-safe: the gateway's threads and moto's share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.api_requests = 0
            self.lambda_ms: dict[str, list[float]] = defaultdict(list)  # function -> each invocation's ms
            self.calls: dict[str, int] = defaultdict(int)  # "service.Operation" -> count
            self.dynamodb = {"rru": 0.0, "wru": 0.0}
            self.dynamodb_ops: dict[str, float] = defaultdict(float)  # "Operation" -> its units
            self.s3 = {"tier1": 0, "tier2": 0, "bytes_in": 0, "bytes_out": 0}
            self.vectors = {"put_bytes": 0, "vectors_put": 0, "queries": 0}
            self.sessions: dict[str, dict[str, float]] = {}  # AgentCore session id -> start, stop, timeout
            self.code_seconds = 0.0  # time inside InvokeCodeInterpreter calls: the sandbox's active CPU at most

    def add_api_request(self) -> None:
        with self._lock:
            self.api_requests += 1

    def add_invocation(self, function: str, milliseconds: float) -> None:
        with self._lock:
            self.lambda_ms[function].append(milliseconds)

    @contextmanager
    def invocation(self, function: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add_invocation(function, (time.perf_counter() - start) * 1000)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.time()
            return {
                "api_requests": self.api_requests,
                "lambda_ms": {name: list(values) for name, values in self.lambda_ms.items()},
                "calls": dict(self.calls),
                "dynamodb": dict(self.dynamodb),
                "dynamodb_ops": dict(self.dynamodb_ops),
                "s3": dict(self.s3),
                "vectors": dict(self.vectors),
                # A session still open is reported as AWS would bill it: until its timeout.
                "session_seconds": sum(
                    (s["stop"] if s["stop"] else s["start"] + s["timeout"]) - s["start"] for s in self.sessions.values()
                ),
                "sessions": len(self.sessions),
                "sessions_open": sum(1 for s in self.sessions.values() if not s["stop"] and s["start"] <= now),
                "code_seconds": self.code_seconds,
            }

    # ---------------------------------------------------------------- botocore hooks

    def attach(self, client: Any) -> None:
        """Count what ``client`` calls: its events' handlers see each request and its answer."""
        events = client.meta.events
        service = client.meta.service_model.service_name
        # Not provide-client-params: boto3's DynamoDB resource answers that event with a copy of
        # the parameters, which is what gets sent; before-parameter-build sees the one sent.
        events.register("before-parameter-build", self._before)
        events.register("after-call", lambda **kw: self._after(service, **kw))

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["meter_params"] = params
        context["meter_started"] = time.perf_counter()
        if model.service_model.service_name == "dynamodb" and "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        if "Body" in params:
            context["meter_bytes_in"] = body_size(params["Body"])

    def _after(
        self, service: str, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        operation = model.name
        params = context.get("meter_params") or {}
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1
            if service == "dynamodb":
                self._dynamodb(operation, params, parsed)
            elif service == "s3":
                self._s3(operation, http_response, context)
            elif service == "s3vectors":
                self._vectors(operation, params)
            elif service == "bedrock-agentcore":
                self._agentcore(operation, params, parsed, context)

    def _dynamodb(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        consumed = parsed.get("ConsumedCapacity")
        units = sum(c.get("CapacityUnits", 0.0) for c in consumed) if isinstance(consumed, list) else None
        if isinstance(consumed, dict):
            units = float(consumed.get("CapacityUnits", 0.0))
        error = (parsed.get("Error") or {}).get("Code")
        reads = operation in DYNAMODB_QUERIES or operation in {"GetItem", "BatchGetItem", "TransactGetItems"}
        if operation in DYNAMODB_QUERIES and not error:
            minimum = 1.0 if params.get("ConsistentRead") else 0.5
            units = max(units or 0.0, minimum)
        if units is None and error == "ConditionalCheckFailedException":
            units = 1.0
        if units is None and error == "TransactionCanceledException":
            units = 2.0 * len(params.get("TransactItems") or [])
        self.dynamodb["rru" if reads else "wru"] += units or 0.0
        self.dynamodb_ops[operation] += units or 0.0

    def _s3(self, operation: str, http_response: Any, context: dict[str, Any]) -> None:
        if operation in S3_FREE:
            return
        self.s3["tier1" if operation in S3_TIER1 else "tier2"] += 1
        if operation in {"PutObject", "UploadPart"}:
            self.s3["bytes_in"] += int(context.get("meter_bytes_in") or 0)
        if operation == "GetObject":
            self.s3["bytes_out"] += int(http_response.headers.get("Content-Length") or 0)

    def _vectors(self, operation: str, params: dict[str, Any]) -> None:
        if operation == "PutVectors":
            for vector in params.get("vectors") or []:
                self.vectors["vectors_put"] += 1
                self.vectors["put_bytes"] += vector_bytes(vector)
        elif operation == "QueryVectors":
            self.vectors["queries"] += 1

    def _agentcore(
        self, operation: str, params: dict[str, Any], parsed: dict[str, Any], context: dict[str, Any]
    ) -> None:
        now = time.time()
        if operation == "StartCodeInterpreterSession" and parsed.get("sessionId"):
            timeout = float(params.get("sessionTimeoutSeconds") or 900)
            self.sessions[parsed["sessionId"]] = {"start": now, "stop": 0.0, "timeout": timeout}
        elif operation == "StopCodeInterpreterSession" and params.get("sessionId") in self.sessions:
            self.sessions[params["sessionId"]]["stop"] = now
        elif operation == "InvokeCodeInterpreter":
            self.code_seconds += time.perf_counter() - float(context.get("meter_started") or time.perf_counter())


def body_size(body: Any) -> int:
    """The size of a request body given as bytes, text or a seekable file."""
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    try:
        position = body.tell()
        size = body.seek(0, os.SEEK_END) - position
        body.seek(position)
        return int(size)
    except (AttributeError, OSError, ValueError):
        return 0


def vector_bytes(vector: dict[str, Any]) -> int:
    """A vector's logical size as S3 Vectors bills it: 4 bytes a dimension, its key, its metadata."""
    data = vector.get("data") or {}
    dimensions = len(data.get("float32") or [])
    metadata = vector.get("metadata")
    return (
        4 * dimensions
        + len(str(vector.get("key", "")).encode())
        + (len(json.dumps(metadata).encode()) if metadata else 0)
    )


METER = Meter()
_installed = False


def install() -> None:
    """Attach the meter to every botocore client this process creates from now on."""
    global _installed
    if _installed:
        return
    import botocore.session

    original: Callable[..., Any] = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        METER.attach(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    _installed = True


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' snapshots as one."""
    total: dict[str, Any] = {}
    for snap in snapshots:
        for key, value in snap.items():
            if isinstance(value, dict):
                into = total.setdefault(key, {})
                for name, item in value.items():
                    into[name] = into.get(name, [] if isinstance(item, list) else 0) + item
            else:
                total[key] = total.get(key, 0) + value
    return total


def http_app(meter: Meter = METER) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """``GET``/``DELETE`` ``/_local/meter`` as a WSGI app (the emulated AWS's port)."""

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "DELETE":
            meter.reset()
        body = json.dumps(meter.snapshot()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return application
