"""Citation markers: how search results are shown to the model, and how the markers its answer
repeats become ``file_citation`` annotations.

The model cites a search result with its marker ``【<call>:<result>†<file name>】``
(:mod:`.file_search`). The marker stays in the text, as OpenAI's did, and an annotation says
which file it points at, with ``start_index``/``end_index`` on the marker in the message text.

While the answer streams, a marker may arrive split over several chunks, so text from an
unclosed ``【`` is held back until its ``】`` arrives (or it is clearly not a marker), and every
delta that carries a whole marker carries its annotation too. Links to files the run's code
wrote (``sandbox:/mnt/data/<name>``, ``file_path`` annotations) stream the same way.
"""

from __future__ import annotations

import re
from typing import Any

from ..code_interpreter.files import link_annotations

MARKER = re.compile(r"【(\d+):(\d+)†([^】\n]{0,200})】")
OPENING = "【"
# Text after an unclosed 【 longer than this is not a marker: it is let through.
HOLD_LIMIT = 240

CitationTable = dict[tuple[int, int], str]  # (call, result) -> file_id


def marker(call_number: int, result_number: int, file_name: str) -> str:
    return f"【{call_number}:{result_number}†{file_name}】"


def tool_output(call_number: int, results: list[dict[str, Any]]) -> str:
    """What the model reads for a search: each passage behind its citation marker."""
    if not results:
        return "No results: the files hold nothing relevant to these queries."
    passages = []
    for number, result in enumerate(results):
        text = "".join(part.get("text", "") for part in result.get("content") or [])
        passages.append(f"{marker(call_number, number, result['file_name'])}\n{text}")
    return "\n\n".join(["Results (cite a passage you use with its marker, exactly as written):", *passages])


def table_from(steps: list[dict[str, Any]]) -> CitationTable:
    """Every search result of a run's steps, numbered as the model saw them: calls in order
    across the run, results in order within a call."""
    table: CitationTable = {}
    call_number = 0
    for step in steps:
        for call in (step.get("step_details") or {}).get("tool_calls") or []:
            if call.get("type") != "file_search":
                continue
            for result_number, result in enumerate((call.get("file_search") or {}).get("results") or []):
                table[(call_number, result_number)] = str(result["file_id"])
            call_number += 1
    return table


def annotate(text: str, table: CitationTable, *, offset: int = 0) -> list[dict[str, Any]]:
    """Annotations of the known markers in ``text``, which starts at ``offset`` of the message."""
    found: list[dict[str, Any]] = []
    for match in MARKER.finditer(text):
        file_id = table.get((int(match.group(1)), int(match.group(2))))
        if file_id is None:
            continue  # a marker the model made up: left as plain text
        annotation: dict[str, Any] = {
            "type": "file_citation",
            "text": match.group(0),
            "start_index": offset + match.start(),
            "end_index": offset + match.end(),
            "file_citation": {"file_id": file_id},
        }
        found.append(annotation)
    return found


class CitationStream:
    """Cuts streamed text where no marker or file link is split, and annotates those of each piece.

    ``links``: the /mnt/data paths of files the run's code wrote -> their file ids."""

    def __init__(self, table: CitationTable, links: dict[str, str] | None = None) -> None:
        self.table = table
        self.links = links or {}
        self.link_texts = ["sandbox:" + path for path in self.links]
        self.pending = ""
        self.emitted = 0  # characters of the message text already sent
        self.count = 0  # annotations already sent

    def feed(self, text: str) -> list[tuple[str, list[dict[str, Any]]]]:
        self.pending += text
        cut = len(self.pending)
        opening = self.pending.rfind(OPENING)
        if opening >= 0 and "】" not in self.pending[opening:] and len(self.pending) - opening < HOLD_LIMIT:
            cut = opening
        return self._release(min(cut, self._link_start()))

    def _link_start(self) -> int:
        """Where a link may be starting, or may go on (``a.csv`` could become ``a.csv.bak``)."""
        window = max(map(len, self.link_texts), default=0)
        for start in range(max(0, len(self.pending) - window), len(self.pending)):
            tail = self.pending[start:]
            if any(link.startswith(tail) for link in self.link_texts):
                return start
        return len(self.pending)

    def flush(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return self._release(len(self.pending))

    def _release(self, cut: int) -> list[tuple[str, list[dict[str, Any]]]]:
        piece, self.pending = self.pending[:cut], self.pending[cut:]
        if not piece:
            return []
        found = annotate(piece, self.table, offset=self.emitted) + [
            {**a, "start_index": a["start_index"] + self.emitted, "end_index": a["end_index"] + self.emitted}
            for a in link_annotations(piece, self.links)
        ]
        found.sort(key=lambda a: int(a["start_index"]))
        found = [{"index": self.count + i, **a} for i, a in enumerate(found)]
        self.emitted += len(piece)
        self.count += len(found)
        return [(piece, found)]
