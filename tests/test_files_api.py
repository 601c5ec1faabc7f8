"""Files and Uploads end to end: the official SDK over HTTP through the local stack.

Raw httpx only where the SDK cannot send the request (a missing field, a chunked body, no
Authorization) or hides the answer (the 307 of a large file's content). Every object is
validated against OpenAI's spec, every error against its error shape, and what a refused
request would have stored is looked for in the bucket and the list.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from openai import OpenAI

from local.stack import tenant_for_open_key
from tests.conftest import Stack
from tests.harness.openapi_spec import validate_object, validate_response, wire

BUCKET = "filesbucket"
TABLE = "AssistantsTable"
MIB = 1024 * 1024
LIMIT = 4_500_000  # the largest request the upload routes take (request_size.py)
FILE_ID = re.compile(r"^file-[0-9A-Za-z]{24}$")
UPLOAD_ID = re.compile(r"^upload_[0-9A-Za-z]{24}$")
PART_ID = re.compile(r"^part_[0-9A-Za-z]{24}$")
ALL_BYTES = bytes(range(256)) * 64
ZERO_HEAVY = b"\0" * 200_000 + b"\x01\x00\xff" + b"\0" * 5_000
# Looks like multipart framing inside the payload: the parser must not cut the file there.
FRAMING = b"--boundary\r\n\r\n--\r\nContent-Disposition: form-data\r\n\r\n\x00\r\n--"


def error_of(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a failed request, made with the SDK or with httpx."""
    try:
        result = call()
    except openai.APIStatusError as error:
        return error.status_code, error.response.json()
    assert isinstance(result, httpx.Response), f"expected an error, got {result!r}"
    assert result.status_code >= 400, result.text
    return result.status_code, result.json()


def expect_error(
    call: Callable[[], Any], status: int, param: str | None, code: str | None, says: str = ""
) -> dict[str, Any]:
    got_status, body = error_of(call)
    assert got_status == status, body
    validate_object("ErrorResponse", body)
    error = body["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code), error
    assert says in error["message"], error["message"]
    return dict(error)


def keys(aws: Callable[[str], Any], prefix: str) -> list[str]:
    pages = aws("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def chunked(*pieces: bytes) -> Iterator[bytes]:
    """A body httpx sends without Content-Length (Transfer-Encoding: chunked)."""
    yield from pieces


def multipart_without_length(field: str, data: bytes, **fields: str) -> tuple[Iterator[bytes], dict[str, str]]:
    boundary = "b0undary" + os.urandom(8).hex()
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = chunked(head, data[: len(data) // 2], data[len(data) // 2 :], f"\r\n--{boundary}--\r\n".encode())
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def check_file(file: Any, *, filename: str, size: int, purpose: str = "assistants") -> None:
    assert FILE_ID.match(file.id), file.id
    assert (file.object, file.filename, file.bytes, file.purpose, file.status) == (
        "file",
        filename,
        size,
        purpose,
        "processed",
    )
    validate_object("OpenAIFile", wire(file))


# ------------------------------------------------------------------ files


def test_file_round_trip_bytes_tuple_and_path(client: OpenAI, http: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "report.bin"
    path.write_bytes(ZERO_HEAVY)
    text = "naïve café ✓\n".encode() * 100
    made = [
        (client.files.create(file=ALL_BYTES + FRAMING, purpose="assistants"), "upload", ALL_BYTES + FRAMING),
        (client.files.create(file=("notes é.txt", text, "text/plain"), purpose="user_data"), "notes é.txt", text),
        (client.files.create(file=path, purpose="vision"), "report.bin", ZERO_HEAVY),
    ]
    purposes = ["assistants", "user_data", "vision"]
    for (file, filename, data), purpose in zip(made, purposes, strict=True):
        check_file(file, filename=filename, size=len(data), purpose=purpose)
        assert file.expires_at is None
        assert client.files.retrieve(file.id) == file
        raw = http.get(f"/v1/files/{file.id}")
        assert raw.status_code == 200
        validate_response("get", "/files/{file_id}", raw.json())
        assert "expires_at" not in raw.json()  # no expiry: left out, as the spec has no null there
        content = client.files.content(file.id)
        assert content.response.status_code == 200
        assert content.read() == data
    assert len({file.id for file, _, _ in made}) == 3

    listed = client.files.list()
    assert [f.id for f in listed.data] == [file.id for file, _, _ in reversed(made)]

    first = made[0][0]
    deleted = client.files.delete(first.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (first.id, "file", True)
    validate_object("DeleteFileResponse", wire(deleted))
    expect_error(lambda: client.files.retrieve(first.id), 404, "file_id", None, first.id)
    expect_error(lambda: client.files.content(first.id), 404, "file_id", None, first.id)
    expect_error(lambda: client.files.delete(first.id), 404, "file_id", None, first.id)
    assert [f.id for f in client.files.list().data] == [made[2][0].id, made[1][0].id]
    assert client.files.content(made[2][0].id).read() == ZERO_HEAVY  # the others are untouched


def test_list_files_purpose_limit_order_after(client: OpenAI, http: httpx.Client) -> None:
    purposes = ["assistants", "batch", "assistants", "user_data", "assistants"]
    ids = [client.files.create(file=(f"f{i}.txt", b"x" * (i + 1)), purpose=p).id for i, p in enumerate(purposes)]
    assert ids == sorted(ids)  # ids sort by creation

    everything = client.files.list()
    assert [f.id for f in everything.data] == ids[::-1] and everything.has_more is False
    assert [f.id for f in client.files.list(order="asc").data] == ids
    raw = http.get("/v1/files", params={"order": "asc"}).json()
    validate_response("get", "/files", raw)
    assert (raw["object"], raw["first_id"], raw["last_id"], raw["has_more"]) == ("list", ids[0], ids[-1], False)

    pages, after = [], None
    while True:
        page = client.files.list(limit=2, order="asc", **({"after": after} if after else {}))
        pages.append(([f.id for f in page.data], page.has_more))
        if not page.has_more:
            break
        after = page.data[-1].id
    assert pages == [(ids[0:2], True), (ids[2:4], True), (ids[4:5], False)]
    desc = client.files.list(limit=3, after=ids[4])
    assert ([f.id for f in desc.data], desc.has_more) == ([ids[3], ids[2], ids[1]], True)

    assistants = [ids[0], ids[2], ids[4]]
    assert [f.id for f in client.files.list(purpose="assistants").data] == assistants[::-1]
    one = client.files.list(purpose="assistants", limit=1, order="asc")
    assert ([f.id for f in one.data], one.has_more) == ([ids[0]], True)
    rest = client.files.list(purpose="assistants", order="asc", after=ids[0])
    assert ([f.id for f in rest.data], rest.has_more) == ([ids[2], ids[4]], False)
    assert [f.id for f in client.files.list(purpose="batch").data] == [ids[1]]
    assert [f.purpose for f in client.files.list(purpose="user_data").data] == ["user_data"]

    empty = http.get("/v1/files", params={"purpose": "vision"}).json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    validate_response("get", "/files", empty)
    expect_error(lambda: client.files.list(limit=0), 400, "limit", "invalid_value")
    expect_error(lambda: client.files.list(limit=10_001), 400, "limit", "invalid_value")
    expect_error(lambda: client.files.list(order="sideways"), 400, "order", "invalid_value")  # type: ignore[arg-type]


def test_expires_after_sets_expires_at(client: OpenAI, http: httpx.Client) -> None:
    hour = client.files.create(
        file=("a.txt", b"a"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    month = client.files.create(
        file=("b.txt", b"b"), purpose="batch", expires_after={"anchor": "created_at", "seconds": 2_592_000}
    )
    assert hour.expires_at == hour.created_at + 3600
    assert month.expires_at == month.created_at + 2_592_000
    for file in (hour, month):
        validate_object("OpenAIFile", wire(file))
        assert client.files.retrieve(file.id).expires_at == file.expires_at
        assert http.get(f"/v1/files/{file.id}").json()["expires_at"] == file.expires_at
    assert {f.id: f.expires_at for f in client.files.list().data} == {
        hour.id: hour.expires_at,
        month.id: month.expires_at,
    }


BAD_CREATES: list[tuple[str, Callable[[OpenAI, httpx.Client], Any], str | None, str | None, str]] = [
    (
        "unknown purpose",
        lambda c, h: c.files.create(file=("a.txt", b"x"), purpose="nope"),  # type: ignore[arg-type]
        "purpose",
        "invalid_value",
        "'nope'",
    ),
    (
        "missing purpose",
        lambda c, h: h.post("/v1/files", files={"file": ("a.txt", b"x")}),
        "purpose",
        "missing_required_parameter",
        "purpose",
    ),
    (
        "missing file",
        lambda c, h: h.post("/v1/files", files={"purpose": (None, "assistants")}),
        "file",
        "missing_required_parameter",
        "file",
    ),
    (
        "file sent as a plain field",
        lambda c, h: h.post("/v1/files", files={"purpose": (None, "assistants"), "file": (None, "text")}),
        "file",
        "missing_required_parameter",
        "file",
    ),
    ("empty file", lambda c, h: c.files.create(file=("e.txt", b""), purpose="assistants"), "file", "empty_file", ""),
    ("JSON body", lambda c, h: h.post("/v1/files", json={"purpose": "assistants"}), None, None, "multipart"),
    (
        "urlencoded body",
        lambda c, h: h.post("/v1/files", data={"purpose": "assistants", "file": "x"}),
        None,
        None,
        "multipart",
    ),
    (
        "broken multipart",
        lambda c, h: h.post(
            "/v1/files", content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=xyz"}
        ),
        None,
        None,
        "",
    ),
    (
        "expires_after too short",
        lambda c, h: c.files.create(
            file=("a.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 10}
        ),
        "expires_after.seconds",
        "invalid_value",
        "3600",
    ),
    (
        "expires_after too long",
        lambda c, h: c.files.create(
            file=("a.txt", b"x"), purpose="assistants", expires_after={"anchor": "created_at", "seconds": 2_592_001}
        ),
        "expires_after.seconds",
        "invalid_value",
        "2592000",
    ),
    (
        "expires_after unknown anchor",
        lambda c, h: c.files.create(
            file=("a.txt", b"x"),
            purpose="assistants",
            expires_after={"anchor": "last_active_at", "seconds": 3600},  # type: ignore[typeddict-item]
        ),
        "expires_after.anchor",
        "invalid_value",
        "created_at",
    ),
    (
        "expires_after without anchor",
        lambda c, h: h.post(
            "/v1/files",
            files={"file": ("a.txt", b"x"), "purpose": (None, "assistants"), "expires_after[seconds]": (None, "3600")},
        ),
        "expires_after.anchor",
        "missing_required_parameter",
        "",
    ),
    (
        "expires_after seconds not a number",
        lambda c, h: h.post(
            "/v1/files",
            files={
                "file": ("a.txt", b"x"),
                "purpose": (None, "assistants"),
                "expires_after[anchor]": (None, "created_at"),
                "expires_after[seconds]": (None, "soon"),
            },
        ),
        "expires_after.seconds",
        "invalid_value",
        "",
    ),
    (
        "expires_after as one plain field",
        lambda c, h: h.post(
            "/v1/files",
            files={
                "file": ("a.txt", b"x"),
                "purpose": (None, "assistants"),
                "expires_after": (None, '{"anchor": "created_at", "seconds": 10}'),
            },
        ),
        "expires_after",
        "invalid_value",
        "expires_after[anchor]",
    ),
    (
        "unknown field",
        lambda c, h: c.files.create(file=("a.txt", b"x"), purpose="assistants", extra_body={"colour": "red"}),
        "colour",
        "unknown_parameter",
        "colour",
    ),
]


@pytest.mark.parametrize(
    ("call", "param", "code", "says"), [case[1:] for case in BAD_CREATES], ids=[case[0] for case in BAD_CREATES]
)
def test_bad_file_create_is_a_400_that_stores_nothing(
    client: OpenAI,
    http: httpx.Client,
    aws: Callable[[str], Any],
    api_key: str,
    call: Callable[[OpenAI, httpx.Client], Any],
    param: str | None,
    code: str | None,
    says: str,
) -> None:
    expect_error(lambda: call(client, http), 400, param, code, says)
    assert client.files.list().data == []
    assert keys(aws, f"t/{tenant_for_open_key(api_key)}/") == []


UPLOAD = {"filename": "u.txt", "purpose": "assistants", "bytes": 10, "mime_type": "text/plain"}
BAD_UPLOADS: list[tuple[str, dict[str, Any], str, str]] = [
    ("over 512 MB", {**UPLOAD, "bytes": 512 * MIB + 1}, "bytes", "invalid_value"),
    ("unknown purpose", {**UPLOAD, "purpose": "nope"}, "purpose", "invalid_value"),
    ("no filename", {k: v for k, v in UPLOAD.items() if k != "filename"}, "filename", "missing_required_parameter"),
    ("no mime_type", {k: v for k, v in UPLOAD.items() if k != "mime_type"}, "mime_type", "missing_required_parameter"),
    ("unknown field", {**UPLOAD, "colour": "blue"}, "colour", "unknown_parameter"),
    (
        "bad expires_after",
        {**UPLOAD, "expires_after": {"anchor": "created_at", "seconds": 10}},
        "expires_after.seconds",
        "invalid_value",
    ),
]


@pytest.mark.parametrize(("body", "param", "code"), [c[1:] for c in BAD_UPLOADS], ids=[c[0] for c in BAD_UPLOADS])
def test_bad_upload_create_is_a_400_that_stores_nothing(
    http: httpx.Client, aws: Callable[[str], Any], api_key: str, body: dict[str, Any], param: str, code: str
) -> None:
    expect_error(lambda: http.post("/v1/uploads", json=body), 400, param, code)
    scanned = aws("dynamodb").scan(
        TableName=TABLE,
        FilterExpression="begins_with(SK, :upload)",
        ExpressionAttributeValues={":upload": {"S": "UPLOAD#"}},
    )
    tenant = tenant_for_open_key(api_key)
    assert [i for i in scanned["Items"] if i["PK"]["S"] == f"T#{tenant}"] == []


def test_an_empty_part_is_a_400(client: OpenAI, api_key: str, aws: Callable[[str], Any]) -> None:
    upload = client.uploads.create(bytes=1, filename="e.txt", mime_type="text/plain", purpose="assistants")
    expect_error(lambda: client.uploads.parts.create(upload.id, data=b""), 400, "data", None)
    assert keys(aws, f"t/{tenant_for_open_key(api_key)}/uploads/{upload.id}/") == []


def test_direct_upload_over_the_limit_is_a_413_naming_the_uploads_api(
    client: OpenAI, http: httpx.Client, api_key: str, stack_url: str, aws: Callable[[str], Any]
) -> None:
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}, timeout=60) as recording:
        sdk = OpenAI(base_url=f"{stack_url}/v1", api_key=api_key, max_retries=0, http_client=recording)
        too_big = os.urandom(4_600_000)
        # The SDK states the body's length, so the upload routes' authorizer refuses it by its
        # Content-Length and API Gateway's ACCESS_DENIED answer is the 413 (no param).
        error = expect_error(
            lambda: sdk.files.create(file=("big.bin", too_big), purpose="assistants"),
            413,
            None,
            "request_too_large",
            "Uploads API",
        )
        assert "client.uploads.upload_file_chunked(" in error["message"] and "4,500,000 bytes" in error["message"]
        assert int(sent[-1].headers["content-length"]) > LIMIT

        upload = sdk.uploads.create(
            bytes=5, filename="p.bin", mime_type="application/octet-stream", purpose="assistants"
        )
        part_error = expect_error(
            lambda: sdk.uploads.parts.create(upload.id, data=too_big), 413, None, "request_too_large", "Uploads API"
        )
        assert part_error["message"] == error["message"]
        assert int(sent[-1].headers["content-length"]) > LIMIT
        # upload_file_chunked's default part (64 MB) is too large here; the answer says which fits.
        hint = expect_error(
            lambda: sdk.uploads.upload_file_chunked(
                file=too_big, filename="d.bin", bytes=len(too_big), mime_type="text/plain", purpose="assistants"
            ),
            413,
            None,
            "request_too_large",
            "part_size=4 * 1024 * 1024",
        )
        assert hint["message"] == error["message"]

    # Without Content-Length the authorizer cannot tell; the function itself refuses the body.
    body, headers = multipart_without_length("file", too_big, purpose="assistants")
    response = http.post("/v1/files", content=body, headers=headers)
    assert "content-length" not in response.request.headers
    function_error = expect_error(lambda: response, 413, "file", "request_too_large", "Uploads API")
    assert function_error["message"] == error["message"]
    body, headers = multipart_without_length("data", too_big)
    response = http.post(f"/v1/uploads/{upload.id}/parts", content=body, headers=headers)
    expect_error(lambda: response, 413, "data", "request_too_large", "Uploads API")

    # Nothing of the refused bodies was stored; just under the limit still goes through.
    assert client.files.list().data == []
    assert keys(aws, f"t/{tenant_for_open_key(api_key)}/") == []
    fits = os.urandom(LIMIT - 1_000)
    file = client.files.create(file=("fits.bin", fits), purpose="assistants")
    check_file(file, filename="fits.bin", size=len(fits))
    assert client.files.content(file.id).read() == fits
    part = client.uploads.parts.create(upload.id, data=b"12345")
    assert client.uploads.complete(upload.id, part_ids=[part.id]).status == "completed"


def test_body_over_10_mb_is_a_413_from_the_gateway(client: OpenAI, stack_url: str) -> None:
    huge = b"\0" * (10 * MIB + 1)
    # No Authorization: API Gateway refuses the size before any authorizer runs (else a 401).
    with httpx.Client(base_url=stack_url, timeout=60) as anonymous:
        for path in ("/v1/files", "/v1/uploads/upload_x/parts", "/v1/uploads"):
            response = anonymous.post(path, content=huge, headers={"Content-Type": "multipart/form-data; boundary=x"})
            expect_error(lambda r=response: r, 413, None, "request_too_large", "Uploads API")
        small = anonymous.post("/v1/files", content=b"x" * 4_600_000)
        assert small.status_code == 401  # the same request under 10 MB does reach the authorizer
    expect_error(
        lambda: client.files.create(file=("huge.bin", huge), purpose="assistants"),
        413,
        None,
        "request_too_large",
        "Uploads API",
    )
    assert client.files.list().data == []


# ------------------------------------------------------------------ uploads


def test_upload_file_chunked_then_large_content_by_redirect(
    client: OpenAI, http: httpx.Client, stack: Stack, api_key: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MIB + 12_345)  # three parts of at most 4 MiB
    path = tmp_path / "large input.bin"
    path.write_bytes(data)
    upload = client.uploads.upload_file_chunked(
        file=path,
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=4 * MIB,
        md5=hashlib.md5(data).hexdigest(),
    )
    assert UPLOAD_ID.match(upload.id)
    assert (upload.object, upload.status, upload.bytes, upload.filename, upload.purpose) == (
        "upload",
        "completed",
        len(data),
        "large input.bin",
        "assistants",
    )
    assert upload.expires_at == upload.created_at + 3600
    validate_object("Upload", wire(upload))
    assert upload.file is not None
    check_file(upload.file, filename="large input.bin", size=len(data))
    assert client.files.retrieve(upload.file.id) == upload.file
    assert [f.id for f in client.files.list().data] == [upload.file.id]

    # The SDK follows the redirect to S3 and gets every byte.
    assert client.files.content(upload.file.id).read() == data

    response = http.get(f"/v1/files/{upload.file.id}/content")  # httpx does not follow by default
    assert response.status_code == 307
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == stack.aws_endpoint
    assert location.path == f"/{BUCKET}/t/{tenant_for_open_key(api_key)}/files/{upload.file.id}"
    query = parse_qs(location.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4: new buckets refuse SigV2
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert query["response-content-disposition"] == ["attachment; filename*=UTF-8''large%20input.bin"]
    with httpx.Client(timeout=60) as plain:  # the URL needs no API key
        fetched = plain.get(response.headers["location"])
    assert fetched.status_code == 200 and fetched.content == data


def test_content_is_inline_up_to_4_mib_and_a_redirect_above(client: OpenAI, http: httpx.Client) -> None:
    at_limit = os.urandom(4 * MIB)
    inline = client.files.create(file=("inline.bin", at_limit), purpose="assistants")
    response = http.get(f"/v1/files/{inline.id}/content")
    assert response.status_code == 200 and response.content == at_limit

    over = at_limit + b"!"
    upload = client.uploads.upload_file_chunked(
        file=over, filename="over.bin", bytes=len(over), mime_type="application/octet-stream", purpose="batch"
    )
    assert upload.file is not None and upload.file.purpose == "batch"
    assert http.get(f"/v1/files/{upload.file.id}/content").status_code == 307
    assert client.files.content(upload.file.id).read() == over


def test_upload_with_a_wrong_md5_is_refused_and_can_be_completed_again(
    client: OpenAI, aws: Callable[[str], Any], api_key: str
) -> None:
    data = os.urandom(9 * MIB)
    expect_error(
        lambda: client.uploads.upload_file_chunked(
            file=data,
            filename="nine.bin",
            bytes=len(data),
            mime_type="application/octet-stream",
            purpose="assistants",
            part_size=4 * MIB,
            md5="0" * 32,
        ),
        400,
        "md5",
        "checksum_mismatch",
        hashlib.md5(data).hexdigest(),
    )
    assert client.files.list().data == []
    assert keys(aws, f"t/{tenant_for_open_key(api_key)}/files/") == []

    # The upload stays open: the same parts complete with the right checksum.
    small = [b"first part,", b"second part,", b"third"]
    upload = client.uploads.create(
        bytes=sum(map(len, small)), filename="s.txt", mime_type="text/plain", purpose="assistants"
    )
    part_ids = [client.uploads.parts.create(upload.id, data=piece).id for piece in small]
    expect_error(
        lambda: client.uploads.complete(upload.id, part_ids=part_ids, md5="f" * 32), 400, "md5", "checksum_mismatch"
    )
    expect_error(lambda: client.uploads.complete(upload.id, part_ids=part_ids, md5="xyz"), 400, "md5", "invalid_value")
    assert client.files.list().data == []
    done = client.uploads.complete(upload.id, part_ids=part_ids, md5=hashlib.md5(b"".join(small)).hexdigest().upper())
    assert done.status == "completed" and done.file is not None
    assert client.files.content(done.file.id).read() == b"".join(small)
    assert [f.id for f in client.files.list().data] == [done.file.id]


def test_a_concurrent_completion_with_a_wrong_md5_leaves_the_file_whole(client: OpenAI) -> None:
    """Two completions at once (a client retry): the one with a wrong checksum must not touch the
    object that the other one wrote and committed."""
    pieces = [os.urandom(3 * MIB) for _ in range(3)]
    data = b"".join(pieces)
    upload = client.uploads.create(
        bytes=len(data), filename="race.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    part_ids = [client.uploads.parts.create(upload.id, data=piece).id for piece in pieces]

    def complete(md5: str, delay: float) -> Any:
        time.sleep(delay)
        try:
            return client.uploads.complete(upload.id, part_ids=part_ids, md5=md5)
        except openai.BadRequestError as error:
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        right = pool.submit(complete, hashlib.md5(data).hexdigest(), 0.0)
        # Still joining when the right one commits, so a delete of its own output would hit the file.
        wrong = pool.submit(complete, "0" * 32, 0.05)
        done, refused = right.result(), wrong.result()
    assert done.status == "completed" and done.file is not None
    if isinstance(refused, openai.BadRequestError):
        # Refused while the other one joins (one completion at a time), or after it, by its checksum.
        assert refused.code == "checksum_mismatch" or "being completed by another request" in refused.message
    else:
        assert refused == done  # it came after the commit and found the upload completed
    assert client.files.content(done.file.id).read() == data
    assert [f.id for f in client.files.list().data] == [done.file.id]


def test_concurrent_completions_in_different_orders_never_mix(client: OpenAI) -> None:
    """One completion at a time joins the parts: the other order is refused, and the file holds
    the bytes in the winner's order, whole."""
    pieces = [os.urandom(3 * MIB) for _ in range(3)]
    upload = client.uploads.create(
        bytes=sum(map(len, pieces)), filename="order.bin", mime_type="application/octet-stream", purpose="assistants"
    )
    part_ids = [client.uploads.parts.create(upload.id, data=piece).id for piece in pieces]
    orders = {"forward": part_ids, "backward": part_ids[::-1]}

    def complete(order: str) -> Any:
        try:
            return client.uploads.complete(upload.id, part_ids=orders[order])
        except openai.BadRequestError as error:
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(zip(orders, pool.map(complete, orders), strict=True))
    completed = [name for name, outcome in outcomes.items() if not isinstance(outcome, Exception)]
    assert completed, outcomes
    winner = outcomes[completed[0]]
    joined = {"forward": b"".join(pieces), "backward": b"".join(pieces[::-1])}
    for outcome in outcomes.values():
        if isinstance(outcome, openai.BadRequestError):
            assert "being completed by another request" in outcome.message, outcome
        else:
            assert outcome == winner  # a completion that came after the commit found it completed
    content = client.files.content(winner.file.id).read()
    # Exactly one order's bytes: the winner's when only it completed, else either one, never a mix.
    assert content == joined[completed[0]] if len(completed) == 1 else content in joined.values()
    assert [f.id for f in client.files.list().data] == [winner.file.id]


def test_upload_parts_join_in_the_order_given_and_bad_part_ids(client: OpenAI, http: httpx.Client) -> None:
    a, b, c = b"A" * 1000, b"B" * 2000, b"C" * 3000
    upload = client.uploads.create(
        bytes=6000,
        filename="abc.txt",
        mime_type="text/plain",
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 7200},
    )
    assert (upload.status, upload.file) == ("pending", None)
    validate_object("Upload", wire(upload))
    parts = [client.uploads.parts.create(upload.id, data=piece) for piece in (a, b, c)]
    for part in parts:
        assert PART_ID.match(part.id) and (part.object, part.upload_id) == ("upload.part", upload.id)
        validate_object("UploadPart", wire(part))
    pa, pb, pc = (part.id for part in parts)
    other = client.uploads.create(bytes=1, filename="o.txt", mime_type="text/plain", purpose="assistants")
    foreign = client.uploads.parts.create(other.id, data=b"o").id

    expect_error(lambda: client.uploads.complete(upload.id, part_ids=[pa, pb, pa]), 400, "part_ids[2]", None, pa)
    expect_error(lambda: client.uploads.complete(upload.id, part_ids=[pa, "part_nope"]), 400, "part_ids[1]", None)
    expect_error(lambda: client.uploads.complete(upload.id, part_ids=[foreign, pa]), 400, "part_ids[0]", None)
    expect_error(
        lambda: client.uploads.complete(upload.id, part_ids=[pa, pb]), 400, "part_ids", "invalid_value", "3000"
    )
    expect_error(lambda: client.uploads.complete(upload.id, part_ids=[]), 400, "part_ids", "invalid_value")
    expect_error(
        lambda: client.uploads.create(bytes=0, filename="z", mime_type="text/plain", purpose="assistants"),
        400,
        "bytes",
        "invalid_value",
    )
    assert client.files.list().data == []

    done = client.uploads.complete(upload.id, part_ids=[pc, pa, pb])
    assert done.status == "completed" and done.file is not None
    validate_object("Upload", wire(done))
    check_file(done.file, filename="abc.txt", size=6000)
    assert done.file.expires_at == done.file.created_at + 7200
    assert client.files.content(done.file.id).read() == c + a + b

    # A retry of the completion answers the same upload and the same file, and makes no other.
    again = client.uploads.complete(upload.id, part_ids=[pc, pa, pb])
    assert again == done
    assert [f.id for f in client.files.list().data] == [done.file.id]
    expect_error(lambda: client.uploads.parts.create(upload.id, data=b"late"), 400, "upload_id", None, "completed")
    expect_error(lambda: client.uploads.cancel(upload.id), 400, "upload_id", None, "completed")
    assert client.files.content(done.file.id).read() == c + a + b


def test_cancelled_upload_takes_nothing_more(client: OpenAI, aws: Callable[[str], Any], api_key: str) -> None:
    upload = client.uploads.create(bytes=10, filename="x.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload.id, data=b"0123456789")
    parts_prefix = f"t/{tenant_for_open_key(api_key)}/uploads/{upload.id}/"
    assert keys(aws, parts_prefix) == [parts_prefix + part.id]

    cancelled = client.uploads.cancel(upload.id)
    assert (cancelled.id, cancelled.status, cancelled.file) == (upload.id, "cancelled", None)
    validate_object("Upload", wire(cancelled))
    assert keys(aws, parts_prefix) == []
    expect_error(lambda: client.uploads.parts.create(upload.id, data=b"x"), 400, "upload_id", None, "cancelled")
    expect_error(lambda: client.uploads.complete(upload.id, part_ids=[part.id]), 400, "upload_id", None, "cancelled")
    assert client.uploads.cancel(upload.id).status == "cancelled"  # cancelling again changes nothing
    assert client.files.list().data == []
    expect_error(lambda: client.uploads.cancel("upload_nope"), 404, "upload_id", None, "upload_nope")


def test_upload_past_its_expiry(client: OpenAI, aws: Callable[[str], Any], api_key: str) -> None:
    """An hour cannot pass in a test: the upload's stored expires_at is moved into the past instead."""
    upload = client.uploads.create(bytes=4, filename="late.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload.id, data=b"late")
    dynamodb = aws("dynamodb")
    tenant = tenant_for_open_key(api_key)
    key = {"PK": {"S": f"T#{tenant}"}, "SK": {"S": f"UPLOAD#{upload.id}"}}
    item = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    # What is left of an upload nobody completes goes away by itself: its items carry a TTL.
    assert int(item["ttl"]["N"]) == upload.expires_at + 7 * 24 * 3600
    part_item = dynamodb.get_item(
        TableName=TABLE,
        Key={"PK": {"S": f"T#{tenant}#UPLOAD#{upload.id}"}, "SK": {"S": f"PART#{part.id}"}},
        ConsistentRead=True,
    )["Item"]
    assert int(part_item["ttl"]["N"]) == upload.expires_at + 7 * 24 * 3600

    doc = json.loads(item["doc"]["S"])
    doc["expires_at"] = doc["created_at"] - 1
    dynamodb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET doc = :d",
        ExpressionAttributeValues={":d": {"S": json.dumps(doc)}},
    )
    expect_error(lambda: client.uploads.parts.create(upload.id, data=b"more"), 400, "upload_id", None, "expired")
    expect_error(lambda: client.uploads.complete(upload.id, part_ids=[part.id]), 400, "upload_id", None, "expired")
    expect_error(lambda: client.uploads.cancel(upload.id), 400, "upload_id", None, "expired")
    assert client.files.list().data == []


# ------------------------------------------------------------------ tenants and storage


def test_another_tenant_cannot_reach_files_or_uploads(client: OpenAI, other_client: OpenAI) -> None:
    file = client.files.create(file=("secret.txt", b"owner's bytes"), purpose="assistants")
    upload = client.uploads.create(bytes=6, filename="u.txt", mime_type="text/plain", purpose="assistants")
    part = client.uploads.parts.create(upload.id, data=b"owner!")

    expect_error(lambda: other_client.files.retrieve(file.id), 404, "file_id", None, file.id)
    expect_error(lambda: other_client.files.content(file.id), 404, "file_id", None, file.id)
    expect_error(lambda: other_client.files.delete(file.id), 404, "file_id", None, file.id)
    assert other_client.files.list().data == []
    assert other_client.files.list(order="asc", after="file-").data == []
    expect_error(lambda: other_client.uploads.parts.create(upload.id, data=b"x"), 404, "upload_id", None, upload.id)
    expect_error(lambda: other_client.uploads.complete(upload.id, part_ids=[part.id]), 404, "upload_id", None)
    expect_error(lambda: other_client.uploads.cancel(upload.id), 404, "upload_id", None)

    assert client.files.retrieve(file.id) == file
    assert client.files.content(file.id).read() == b"owner's bytes"
    done = client.uploads.complete(upload.id, part_ids=[part.id])
    assert done.file is not None and client.files.content(done.file.id).read() == b"owner!"
    assert other_client.files.list().data == []


def test_objects_are_keyed_by_tenant_and_parts_go_when_completed(
    client: OpenAI, aws: Callable[[str], Any], api_key: str
) -> None:
    s3 = aws("s3")
    direct = client.files.create(file=("table.csv", b"a,b\n1,2\n", "text/csv"), purpose="assistants")
    found = [key for key in keys(aws, "t/") if key.endswith(f"/files/{direct.id}")]
    assert len(found) == 1
    tenant = found[0].split("/")[1]
    assert tenant == tenant_for_open_key(api_key)  # the local stack's tenant of this key
    assert found[0] == f"t/{tenant}/files/{direct.id}"
    head = s3.head_object(Bucket=BUCKET, Key=found[0])
    assert (head["ContentType"], head["ContentLength"]) == ("text/csv", 8)

    pieces = [os.urandom(3 * MIB), os.urandom(3 * MIB), os.urandom(1000)]  # joined by an S3 multipart upload
    upload = client.uploads.create(
        bytes=sum(map(len, pieces)), filename="joined.bin", mime_type="application/x-test", purpose="assistants"
    )
    part_ids = [client.uploads.parts.create(upload.id, data=piece).id for piece in pieces]
    parts_prefix = f"t/{tenant}/uploads/{upload.id}/"
    assert sorted(keys(aws, parts_prefix)) == sorted(parts_prefix + part_id for part_id in part_ids)
    tags = s3.get_object_tagging(Bucket=BUCKET, Key=parts_prefix + part_ids[0])["TagSet"]
    assert tags == [{"Key": "kind", "Value": "upload-part"}]  # what the lifecycle rule deletes

    done = client.uploads.complete(upload.id, part_ids=part_ids)
    assert done.file is not None
    assert keys(aws, parts_prefix) == []
    assert sorted(keys(aws, f"t/{tenant}/files/")) == sorted(
        [f"t/{tenant}/files/{direct.id}", f"t/{tenant}/files/{done.file.id}"]
    )
    joined = s3.get_object(Bucket=BUCKET, Key=f"t/{tenant}/files/{done.file.id}")
    assert joined["ContentType"] == "application/x-test"
    assert joined["Body"].read() == b"".join(pieces)
    assert s3.get_object_tagging(Bucket=BUCKET, Key=f"t/{tenant}/files/{done.file.id}")["TagSet"] == []

    client.files.delete(direct.id)
    assert keys(aws, f"t/{tenant}/files/") == [f"t/{tenant}/files/{done.file.id}"]
