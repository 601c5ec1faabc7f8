"""The encoder of AWS's event stream framing (``application/vnd.amazon.eventstream``).

botocore only decodes it (:mod:`botocore.eventstream`); the emulated InvokeCodeInterpreter must
produce it byte for byte as AWS does, so the app's client code reads the same frames locally.

A message is: total length (uint32), headers length (uint32), CRC32 of those 8 bytes, the
headers, the payload, and the CRC32 of everything before it. A header is: name length (uint8),
name, value type (7 = string), value length (uint16), value.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event stream message with string headers."""
    encoded_headers = _headers(headers)
    total = 12 + len(encoded_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """An ``event`` message whose JSON payload is the event's members (the rest-json convention
    for an event with no explicit payload member, such as ``result``)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, json.dumps(body).encode())


def exception(error_code: str, message: str) -> bytes:
    """A modeled ``exception`` message, as AWS sends when a stream fails after it started."""
    headers = {":exception-type": error_code, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps({"message": message}).encode())
