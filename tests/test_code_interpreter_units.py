"""The code_interpreter's pieces that need no stack: the code streamed from partial JSON, links
to written files, and how a turn's calls share the function's time."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from assistants_core.code_interpreter import calls
from assistants_core.code_interpreter.files import link_annotations, safe_name
from assistants_core.code_interpreter.sandbox import Execution, Limits
from assistants_core.code_interpreter.tool import CodeInput, code_of
from assistants_core.ids import new_id
from assistants_core.repository import THREAD_SK, Repository, thread_pk
from assistants_core.services.lifecycle import RunRef

CODE = 'import math\nprint("π ≈", math.pi)  # a \\ backslash, a\ttab, a quote " and 😀\n'


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_the_code_streams_whole_from_arguments_cut_anywhere(piece: int, ascii_only: bool) -> None:
    arguments = json.dumps({"code": CODE}, ensure_ascii=ascii_only)
    stream = CodeInput()
    pieces = [stream.advance(arguments[: i + piece]) for i in range(0, len(arguments), piece)]
    assert "".join(pieces) == CODE
    assert code_of(arguments) == CODE


def test_code_sent_as_plain_text_is_the_code() -> None:
    stream = CodeInput()
    assert stream.advance("print(") + stream.advance("print(1)") == "print(1)"
    assert code_of("print(1)") == "print(1)"


def test_links_to_written_files_are_annotated_where_they_stand() -> None:
    text = "See sandbox:/mnt/data/a.csv and sandbox:/mnt/data/a.csv.bak, then sandbox:/mnt/data/a.csv."
    found = link_annotations(text, {"/mnt/data/a.csv": "file-1"})
    assert [text[a["start_index"] : a["end_index"]] for a in found] == ["sandbox:/mnt/data/a.csv"] * 2
    assert [a["start_index"] for a in found] == [4, text.rindex("sandbox:")]  # not the .bak one
    assert all(a["file_path"] == {"file_id": "file-1"} and a["type"] == "file_path" for a in found)


def test_file_names_stay_inside_mnt_data() -> None:
    assert safe_name("../../etc/passwd", "file-1") == "passwd"
    assert safe_name("dir\\evil name?.csv", "file-1") == "evil name_.csv"
    assert safe_name("..", "file-1") == "file-1"


class RecordingSandbox:
    """Stands in for AgentCore: records the time limit each call was given."""

    def __init__(self) -> None:
        self.limits: list[float] = []

    def start(self, name: str, timeout_seconds: int) -> str:
        return "session1"

    def stop(self, session_id: str) -> None:
        pass

    def execute(self, session_id: str, code: str, limits: Limits) -> Execution:
        self.limits.append(limits.call_seconds)
        return Execution(logs="ok\n")


def _runner(repo: Repository, seconds_left: float) -> tuple[Any, RecordingSandbox]:
    tenant, thread_id = "t-units", new_id("thread")
    repo.create(thread_pk(tenant, thread_id), THREAD_SK, {"id": thread_id, "object": "thread"})
    sandbox = RecordingSandbox()
    runner = calls._Runner(
        repo,
        sandbox,
        None,
        RunRef(tenant, thread_id, "run_1"),
        {},
        time.monotonic() + seconds_left,  # type: ignore[arg-type]
    )
    return runner, sandbox


def test_calls_share_the_functions_time(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODE_INTERPRETER_CALL_SECONDS", "120")
    call = {"id": "call_1", "code_interpreter": {"input": "1"}}
    runner, sandbox = _runner(repo, seconds_left=3600)
    runner.execute(call)
    runner, short = _runner(repo, seconds_left=30)
    runner.execute(call)
    assert sandbox.limits == [120]
    assert 28 < short.limits[0] <= 30  # what is left, not the full limit


def test_a_call_with_no_time_left_is_not_run(repo: Repository) -> None:
    runner, sandbox = _runner(repo, seconds_left=0.5)
    execution, _ = runner.execute({"id": "call_1", "code_interpreter": {"input": "1"}})
    assert sandbox.limits == []
    assert execution.error and "Not run" in execution.logs
