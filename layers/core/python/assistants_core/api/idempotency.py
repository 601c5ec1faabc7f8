"""``Idempotency-Key`` on every POST: a retry gets the first answer and does nothing twice.

A POST that carries the header claims the key (tenant, path and key) in DynamoDB with
Powertools Idempotency before it runs (:mod:`..repository.idempotency`), and keeps its answer
when it ends. Another request with the key then gets:

- the first answer again, byte for byte, with ``Idempotent-Replayed: true``, if its body (and
  query) is the same; a streamed answer is kept as the run and the place in its event log it
  streamed from (:class:`.run_stream.RunStream`), and streamed again from there;
- a 422 ``idempotency_key_reused`` if its body differs (the SDKs do not retry a 422);
- a 409 ``idempotency_key_in_use`` while the first still runs (the SDKs retry a 409 later).

Answers the SDKs retry (408, 409, 429, 5xx) are not kept: the key is released, so the retry
runs again. Other 4xx are kept (Stripe does the same): the same request fails the same way.
Requests without the header, and other methods, pass straight through and pay nothing.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from typing import TYPE_CHECKING, Any

import anyio
from anyio import to_thread
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..blobs import IDEMPOTENT_ANSWER_TAG, default_blob_store, idempotent_answer_key
from ..errors import APIError
from ..repository import default_repository
from ..repository.idempotency import KEY_FIELD, REQUEST_FIELD, idempotency_store
from ..request_size import MAX_REQUEST_BYTES
from .auth import caller_of

if TYPE_CHECKING:
    from .run_stream import RunStream

logger = Logger()

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARACTERS = 255  # as Stripe; the SDKs' keys (stainless-python-retry-<uuid>) are 59
# How long a claim holds the key if its request dies without releasing it (a Lambda timeout):
# longer than any POST takes before it answers (the API functions time out within 30 s, and a
# streamed run is kept as soon as its stream starts).
IN_PROGRESS_SECONDS = 60
# An answer is kept compressed in the record, which DynamoDB caps at 400 KB; a larger one in S3.
MAX_KEPT_CHARACTERS = 350_000
RETRIED_STATUSES = frozenset({408, 409, 429})  # with 5xx: what the SDKs retry, so never kept
# Where a streamed answer says which run it streams (.run_stream): a list put in the request's
# scope, so that it survives the scope being copied on the way down.
RUN_STREAMS_SCOPE_KEY = "assistants.run_streams"


class IdempotencyMiddleware:
    """ASGI middleware (see the module's docstring); ``create_app`` adds it to every function."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        if key is None:
            return await self.app(scope, receive, send)
        caller = caller_of(Request(scope))
        tenant = caller.tenant if caller else None
        length = headers.get("content-length", "")
        if tenant is None or (length.isdigit() and int(length) > MAX_REQUEST_BYTES):
            return await self.app(scope, receive, send)  # the app answers 401s and 413s itself
        if not key or len(key) > MAX_KEY_CHARACTERS:
            return await _error(400, "invalid_idempotency_key", _BAD_KEY, scope, receive, send)
        body = await _read_body(receive)
        if body is None:
            return  # the client left before it sent its body
        data = {KEY_FIELD: f"POST {scope['path']} {key}", REQUEST_FIELD: request_hash(scope, headers, body)}
        store = idempotency_store(tenant)
        try:
            first = await to_thread.run_sync(claim, store, data)
        except IdempotencyValidationError:
            return await _error(422, "idempotency_key_reused", _REUSED.format(key=key), scope, receive, send)
        except IdempotencyAlreadyInProgressError:
            return await _error(409, "idempotency_key_in_use", _IN_USE, scope, receive, send, retry_after="1")
        if first is not None:
            return await _replay(first.response_json_as_dict() or {}, tenant, scope, receive, send)
        await _Exchange(store, data, tenant, scope, send).run(self.app, _replaying(body, receive))


def request_hash(scope: Scope, headers: Headers, body: bytes) -> str:
    """What "the same request" means: the query, the media type and the body's bytes. A
    multipart body's boundary is left out: the SDKs draw a new one for each attempt."""
    media_type, _, parameters = headers.get("content-type", "").partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and value.strip('"'):
            body = body.replace(value.strip('"').encode("latin-1"), b"")
    digest = hashlib.sha256(bytes(scope.get("query_string") or b""))
    digest.update(b"\n" + media_type.strip().lower().encode("latin-1") + b"\n")
    digest.update(body)
    return digest.hexdigest()


def claim(store: DynamoDBPersistenceLayer, data: dict[str, str]) -> DataRecord | None:
    """Claim the key for this request (None), or the record of the request that completed
    with it. Raises IdempotencyValidationError (another body), IdempotencyAlreadyInProgressError.

    Powertools' ``IdempotencyHandler`` does the same around a function it calls; here the
    "function" is the rest of an ASGI request, which runs between the claim and the save.
    """
    for _ in range(3):
        try:
            store.save_inprogress(data, remaining_time_in_millis=IN_PROGRESS_SECONDS * 1000)
            return None
        except IdempotencyItemAlreadyExistsError as exists:
            try:
                record = exists.old_data_record or store.get_record(data)
            except IdempotencyItemNotFoundError:
                continue  # released meanwhile: claim it again
        if record is None or record.status == STATUS_CONSTANTS["EXPIRED"]:
            continue
        if record.status == STATUS_CONSTANTS["INPROGRESS"]:
            deadline = record.in_progress_expiry_timestamp
            if deadline is not None and deadline < time.time() * 1000:
                continue  # its request died: the conditional put may now take it over
            raise IdempotencyAlreadyInProgressError(record.idempotency_key)
        return record
    raise IdempotencyInconsistentStateError("the idempotency record kept changing")


class _Exchange:
    """One request that holds its key: passes its answer on, and keeps or releases the key."""

    def __init__(
        self, store: DynamoDBPersistenceLayer, data: dict[str, str], tenant: str, scope: Scope, send: Send
    ) -> None:
        self.store, self.data, self.tenant, self.send = store, data, tenant, send
        self.streams: list[RunStream] = []  # a RunStreamResponse says here which run it streams
        self.scope = {**scope, RUN_STREAMS_SCOPE_KEY: self.streams}
        self.start: Message | None = None
        self.body: list[bytes] = []
        self.passing = False  # a stream: its messages go straight on
        self.settled = False  # the answer is kept, or the key released: never undone

    async def run(self, app: ASGIApp, receive: Receive) -> None:
        try:
            await app(self.scope, receive, self._send)
        except BaseException:
            if not self.settled:  # a client gone once the answer was kept, or a broken stream, keep the key
                await self._settle(None)
            raise

    async def _send(self, message: Message) -> None:
        if self.passing:
            return await self.send(message)
        if message["type"] == "http.response.start":
            self.start = message
            if Headers(raw=message.get("headers", [])).get("content-type", "").startswith("text/event-stream"):
                # A stream goes on at once; it is kept as the run it streams, never buffered.
                kept = self.streams and 200 <= message["status"] < 300
                await self._settle(
                    {"status": message["status"], "stream": self.streams[-1].as_dict()} if kept else None
                )
                self.passing = True
                await self.send(message)
            return
        if message["type"] != "http.response.body":
            return await self.send(message)
        self.body.append(message.get("body", b""))
        if message.get("more_body"):
            return
        assert self.start is not None
        answer = await to_thread.run_sync(_kept_answer, self.start, b"".join(self.body), self.tenant)
        await self._settle(answer)
        await self.send(self.start)
        await self.send({"type": "http.response.body", "body": b"".join(self.body)})

    async def _settle(self, answer: dict[str, Any] | None) -> None:
        """Keep the answer, or (None) release the key; a failure here is logged, never the
        client's: the request itself is done."""
        self.settled = True
        with anyio.CancelScope(shield=True):
            try:
                if answer is None:
                    await to_thread.run_sync(self.store.delete_record, self.data, RuntimeError("not kept"))
                else:
                    await to_thread.run_sync(self.store.save_success, self.data, answer)
            except Exception:
                logger.exception("could not settle an idempotency record", extra={"kept": answer is not None})


def _kept_answer(start: Message, body: bytes, tenant: str) -> dict[str, Any] | None:
    """What the record keeps of a buffered answer (None: release the key). An answer its
    record cannot hold (a run with 256,000-character instructions) is kept in S3."""
    status = int(start["status"])
    if status >= 500 or status in RETRIED_STATUSES:
        return None
    headers = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in start.get("headers", [])]
    compressed = zlib.compress(body)
    kept = base64.b64encode(compressed).decode("ascii")
    if len(kept) <= MAX_KEPT_CHARACTERS:
        return {"status": status, "headers": headers, "body": kept}
    key = idempotent_answer_key(tenant)
    try:
        default_blob_store().put(key, compressed, tagging=IDEMPOTENT_ANSWER_TAG)
    except Exception:  # noqa: BLE001 - the request is done; a retry then runs again rather than fail
        logger.exception("could not keep a large idempotent answer", extra={"bytes": len(body)})
        return None
    return {"status": status, "headers": headers, "body_s3": key}


async def _replay(answer: dict[str, Any], tenant: str, scope: Scope, receive: Receive, send: Send) -> None:
    replayed = {REPLAYED_HEADER: "true"}
    if "stream" in answer:
        from .run_stream import RunStream, RunStreamResponse  # only the runs function streams

        response = RunStreamResponse(default_repository(), tenant, RunStream(**answer["stream"]), headers=replayed)
        return await response(scope, receive, send)
    if "body_s3" in answer:
        compressed = await to_thread.run_sync(default_blob_store().get, answer["body_s3"])
    else:
        compressed = base64.b64decode(answer["body"])
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer["headers"]]
    headers.append((REPLAYED_HEADER.lower().encode("latin-1"), b"true"))
    await send({"type": "http.response.start", "status": answer["status"], "headers": headers})
    await send({"type": "http.response.body", "body": zlib.decompress(compressed)})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The request's receive, with the body already read handed over again first."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _error(
    status: int, code: str, message: str, scope: Scope, receive: Receive, send: Send, retry_after: str | None = None
) -> None:
    error = APIError(message, code=code)
    headers = {"Retry-After": retry_after} if retry_after else None
    await JSONResponse(error.body(), status_code=status, headers=headers)(scope, receive, send)


_BAD_KEY = f"The Idempotency-Key header must be 1 to {MAX_KEY_CHARACTERS} characters long."
_REUSED = (
    "Keys for idempotent requests can only be used with the same request they were first used with: "
    "'{key}' was first used with another body. Use a new Idempotency-Key for a different request."
)
_IN_USE = (
    "A request with this Idempotency-Key is still being processed. Retry it once that request has "
    "completed, to get its answer."
)
