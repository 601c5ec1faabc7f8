"""Read a Server-Sent Events response exactly as it came over the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SSEStream:
    events: list[tuple[str, Any]] = field(default_factory=list)  # (event, parsed data)
    comments: list[str] = field(default_factory=list)
    raw: str = ""

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def data(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]


def parse_sse(text: str) -> SSEStream:
    stream = SSEStream(raw=text)
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name, data_lines = None, []
        for line in frame.split("\n"):
            if line.startswith(":"):
                stream.comments.append(line[1:].strip())
            elif line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data_lines.append(line[len("data: ") :])
            else:
                raise AssertionError(f"malformed SSE line {line!r} in frame {frame!r}")
        if name is None and not data_lines:
            continue
        assert name is not None, f"frame without event name: {frame!r}"
        payload = "\n".join(data_lines)
        stream.events.append((name, payload if payload == "[DONE]" else json.loads(payload)))
    return stream


def post_sse(http: httpx.Client, path: str, body: dict[str, Any], timeout: float = 60) -> SSEStream:
    with http.stream("POST", path, json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.read().decode())
