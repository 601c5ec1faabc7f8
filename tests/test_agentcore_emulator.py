"""The AgentCore Code Interpreter emulator (local.emulator.agentcore) answers as AWS does.

Everything goes through boto3's ``bedrock-agentcore`` client against moto in server mode, as the
app's code interpreter tool does: botocore parses the rest-json answers and decodes the event
stream, so a wrong wire format fails here as it would in the app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from local.emulator import agentcore_eventstream
from local.emulator.server import emulated_moto

ROOT = Path(__file__).resolve().parents[1]
IDENTIFIER = "aws.codeinterpreter.v1"
# An interpreter with pandas and matplotlib: the repository's (make) or a ready one of this machine.
SANDBOX_PYTHON = next(
    (str(p) for p in (ROOT / ".venv-sandbox" / "bin" / "python", Path("/tmp/sbx-try/bin/python")) if p.exists()), ""
)
ALLOWED_ENVIRONMENT = {"PATH", "HOME", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "TMPDIR", "PYTHONDONTWRITEBYTECODE"}
ALLOWED_ENVIRONMENT |= {"LC_CTYPE"}  # Python itself sets it when it coerces a C locale (PEP 538)


class Sandbox:
    """A boto3 client on a fresh emulated AWS, with shortcuts for sessions and tools."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = self.make_client()

    def make_client(self, **config: Any) -> Any:
        settings = Config(retries={"total_max_attempts": 1}, read_timeout=120, **config)
        return boto3.client(
            "bedrock-agentcore",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=settings,
        )

    def start(self, **kwargs: Any) -> str:
        started = self.client.start_code_interpreter_session(codeInterpreterIdentifier=IDENTIFIER, **kwargs)
        return str(started["sessionId"])

    def get(self, session_id: str) -> dict[str, Any]:
        got = self.client.get_code_interpreter_session(codeInterpreterIdentifier=IDENTIFIER, sessionId=session_id)
        return dict(got)

    def invoke(self, session_id: str, name: str, client: Any = None, **arguments: Any) -> dict[str, Any]:
        """The one ``result`` event of the stream."""
        response = (client or self.client).invoke_code_interpreter(
            codeInterpreterIdentifier=IDENTIFIER, sessionId=session_id, name=name, arguments=arguments
        )
        events = list(response["stream"])
        assert [list(e) for e in events] == [["result"]]
        return dict(events[0]["result"])

    def run(self, session_id: str, code: str, client: Any = None, **arguments: Any) -> dict[str, Any]:
        code = textwrap.dedent(code)
        return self.invoke(session_id, "executeCode", client, code=code, language="python", **arguments)

    def value(self, session_id: str, code: str) -> Any:
        """What the code prints as JSON on its last line."""
        result = self.run(session_id, code)
        assert not result["isError"], result
        return json.loads(result["structuredContent"]["stdout"].strip().splitlines()[-1])

    def fault(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.url}/_local/faults", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture(name="sandbox")
def sandbox_fixture() -> Iterator[Sandbox]:
    """A fresh emulated AWS per test: its sessions end (workers killed) when the test does."""
    with emulated_moto() as url:
        yield Sandbox(url)


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (an orphan's zombie may wait for PID 1)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_start_get_list_and_stop(sandbox: Sandbox) -> None:
    client = sandbox.client
    started = client.start_code_interpreter_session(
        codeInterpreterIdentifier=IDENTIFIER, name="analysis", sessionTimeoutSeconds=120
    )
    session_id = started["sessionId"]
    assert started["codeInterpreterIdentifier"] == IDENTIFIER and started["createdAt"].tzinfo is not None
    got = sandbox.get(session_id)
    assert (got["name"], got["sessionTimeoutSeconds"], got["status"]) == ("analysis", 120, "READY")
    assert got["createdAt"] == started["createdAt"]
    assert sandbox.get(sandbox.start())["sessionTimeoutSeconds"] == 900  # the default lifetime
    listed = client.list_code_interpreter_sessions(codeInterpreterIdentifier=IDENTIFIER)["items"]
    assert len(listed) == 2 and {s["status"] for s in listed} == {"READY"}
    first = client.list_code_interpreter_sessions(codeInterpreterIdentifier=IDENTIFIER, maxResults=1)
    second = client.list_code_interpreter_sessions(
        codeInterpreterIdentifier=IDENTIFIER, maxResults=1, nextToken=first["nextToken"]
    )
    assert "nextToken" not in second
    assert {first["items"][0]["sessionId"], second["items"][0]["sessionId"]} == {s["sessionId"] for s in listed}
    assert client.list_code_interpreter_sessions(codeInterpreterIdentifier="other-interpreter")["items"] == []

    stopped = client.stop_code_interpreter_session(codeInterpreterIdentifier=IDENTIFIER, sessionId=session_id)
    assert stopped["sessionId"] == session_id and stopped["lastUpdatedAt"] >= started["createdAt"]
    assert sandbox.get(session_id)["status"] == "TERMINATED"
    terminated = client.list_code_interpreter_sessions(codeInterpreterIdentifier=IDENTIFIER, status="TERMINATED")
    assert [s["sessionId"] for s in terminated["items"]] == [session_id]
    ready = client.list_code_interpreter_sessions(codeInterpreterIdentifier=IDENTIFIER, status="READY")["items"]
    assert session_id not in {s["sessionId"] for s in ready} and len(ready) == 1


def test_client_token_makes_start_idempotent(sandbox: Sandbox) -> None:
    token = "a" * 40
    assert sandbox.start(clientToken=token) == sandbox.start(clientToken=token) != sandbox.start()


def test_variables_persist_between_executions_until_clear_context(sandbox: Sandbox) -> None:
    session = sandbox.start()
    assert not sandbox.run(session, "numbers = [1, 2, 3]\ndef double(x):\n    return 2 * x")["isError"]
    result = sandbox.run(session, "print(sum(map(double, numbers)))")
    assert result["structuredContent"]["stdout"] == "12\n"
    assert result["content"] == [{"type": "text", "text": "12\n"}]
    assert sandbox.run(session, "len(numbers) + 1")["structuredContent"]["stdout"] == "4\n"  # a final expression
    cleared = sandbox.run(session, "numbers", clearContext=True)
    assert cleared["isError"] and "NameError" in cleared["structuredContent"]["stderr"]


def test_stdout_stderr_and_traceback(sandbox: Sandbox) -> None:
    session = sandbox.start()
    ok = sandbox.run(session, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert ok["isError"] is False
    structured = ok["structuredContent"]
    assert (structured["stdout"], structured["stderr"], structured["exitCode"]) == ("out\n", "err\n", 0)
    assert 0 <= structured["executionTime"] < 10
    assert ok["content"] == [{"type": "text", "text": "out\nerr\n"}]

    failed = sandbox.run(
        session,
        """
        print('before')
        def inner():
            raise ValueError('boom')
        inner()
        """,
    )
    structured = failed["structuredContent"]
    assert failed["isError"] is True and structured["exitCode"] == 1
    assert structured["stdout"] == "before\n"
    stderr = structured["stderr"]
    assert stderr.startswith("Traceback (most recent call last):") and stderr.endswith("ValueError: boom\n")
    assert "raise ValueError('boom')" in stderr and "code_worker" not in stderr  # the user's frames only
    assert failed["content"][0]["text"] == structured["stdout"] + stderr

    exited = sandbox.run(session, "import sys\nsys.exit(3)")
    assert (exited["structuredContent"]["exitCode"], exited["isError"]) == (3, True)
    assert sandbox.run(session, "print('still here')")["structuredContent"]["stdout"] == "still here\n"


def test_user_output_cannot_corrupt_the_protocol(sandbox: Sandbox) -> None:
    session = sandbox.start()
    result = sandbox.run(
        session,
        """
        import os, sys
        os.write(1, b'{"not": "a reply"}\\n')
        os.system('echo from-a-shell')
        sys.__stdout__.write('raw stdout\\n')
        try:
            input()
        except EOFError:
            print('stdin is empty')
        """,
    )
    stdout = result["structuredContent"]["stdout"]
    assert "stdin is empty\n" in stdout and "from-a-shell\n" in stdout and '{"not": "a reply"}' in stdout
    assert sandbox.run(session, "print(1 + 1)")["structuredContent"]["stdout"] == "2\n"


def test_execute_command_runs_in_the_session_directory(sandbox: Sandbox) -> None:
    session = sandbox.start()
    sandbox.invoke(session, "writeFiles", content=[{"path": "note.txt", "text": "hello"}])
    result = sandbox.invoke(session, "executeCommand", command="cat note.txt; echo oops >&2; exit 4")
    structured = result["structuredContent"]
    assert (structured["stdout"], structured["stderr"], structured["exitCode"]) == ("hello", "oops\n", 4)
    assert result["isError"] is True


def test_write_files_then_code_reads_them_by_relative_path(sandbox: Sandbox) -> None:
    session = sandbox.start()
    written = sandbox.invoke(
        session,
        "writeFiles",
        content=[{"path": "data/input.csv", "text": "a,b\n1,2\n"}, {"path": "raw.bin", "blob": b"\x00\xff\x10"}],
    )
    assert written["isError"] is False and written["content"][0]["type"] == "text"
    assert sandbox.value(
        session,
        """
        import json, os
        print(json.dumps([open('data/input.csv').read(), list(open('raw.bin', 'rb').read()), os.getcwd()]))
        """,
    )[:2] == ["a,b\n1,2\n", [0, 255, 16]]


def test_binary_file_written_by_code_is_read_back_as_blob(sandbox: Sandbox) -> None:
    session = sandbox.start()
    cwd = sandbox.value(
        session,
        """
        import json, os
        open('chart.png', 'wb').write(bytes(range(256)))
        open('notes.txt', 'w').write('héllo')
        print(json.dumps(os.getcwd()))
        """,
    )
    result = sandbox.invoke(session, "readFiles", paths=["chart.png", "notes.txt"])
    assert result["isError"] is False
    blob, text = (block["resource"] for block in result["content"])
    assert [block["type"] for block in result["content"]] == ["resource", "resource"]
    assert blob == {
        "type": "blob",
        "blob": bytes(range(256)),
        "mimeType": "image/png",
        "uri": f"file://{cwd}/chart.png",
    }
    assert text == {"type": "text", "text": "héllo", "mimeType": "text/plain", "uri": f"file://{cwd}/notes.txt"}

    missing = sandbox.invoke(session, "readFiles", paths=["nope.txt"])
    assert missing["isError"] is True and "nope.txt" in missing["content"][0]["text"]


def test_list_and_remove_files(sandbox: Sandbox) -> None:
    session = sandbox.start()
    sandbox.invoke(
        session,
        "writeFiles",
        content=[{"path": "out/report.csv", "text": "x\n"}, {"path": "out/plot.png", "blob": b"12345"}],
    )
    sandbox.run(session, "import os\nos.makedirs('out/sub')")
    listed = sandbox.invoke(session, "listFiles", directoryPath="out")
    assert listed["isError"] is False
    links = {block["name"]: block for block in listed["content"]}
    assert set(links) == {"report.csv", "plot.png", "sub"}
    assert {block["type"] for block in listed["content"]} == {"resource_link"}
    assert (links["plot.png"]["size"], links["plot.png"]["mimeType"]) == (5, "image/png")
    assert (links["report.csv"]["size"], links["report.csv"]["mimeType"]) == (2, "text/csv")
    assert links["plot.png"]["uri"].startswith("file:///") and links["plot.png"]["uri"].endswith("/out/plot.png")
    top = {block["name"] for block in sandbox.invoke(session, "listFiles", directoryPath="")["content"]}
    assert "out" in top

    removed = sandbox.invoke(session, "removeFiles", paths=["out/plot.png", "out/sub"])
    assert removed["isError"] is False
    names = {block["name"] for block in sandbox.invoke(session, "listFiles", directoryPath="out")["content"]}
    assert names == {"report.csv"}


def test_paths_outside_the_session_directory_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    session = sandbox.start()
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    sandbox.run(session, f"import os\nos.symlink({str(tmp_path)!r}, 'link')")
    client = sandbox.client
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("readFiles", {"paths": ["../outside.txt"]}),
        ("readFiles", {"paths": [str(outside)]}),
        ("readFiles", {"paths": ["link/outside.txt"]}),
        ("listFiles", {"directoryPath": ".."}),
        ("writeFiles", {"content": [{"path": f"../../{tmp_path.name}/evil.txt", "text": "x"}]}),
        ("writeFiles", {"content": [{"path": str(tmp_path / "evil.txt"), "text": "x"}]}),
        ("removeFiles", {"paths": [str(outside)]}),
    ]
    for name, arguments in attempts:
        with pytest.raises(client.exceptions.ValidationException):
            client.invoke_code_interpreter(
                codeInterpreterIdentifier=IDENTIFIER, sessionId=session, name=name, arguments=arguments
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt"] and outside.read_text() == "secret"
    cwd = sandbox.value(session, "import json, os\nprint(json.dumps(os.getcwd()))")
    inside = sandbox.invoke(session, "writeFiles", content=[{"path": f"{cwd}/abs.txt", "text": "ok"}])
    assert inside["isError"] is False  # an absolute path inside the session directory is fine


def test_invalid_requests_are_validation_errors(sandbox: Sandbox) -> None:
    unchecked = sandbox.make_client(parameter_validation=False)
    for timeout in (0, 28801):
        with pytest.raises(unchecked.exceptions.ValidationException):
            unchecked.start_code_interpreter_session(
                codeInterpreterIdentifier=IDENTIFIER, sessionTimeoutSeconds=timeout
            )
    session = sandbox.start()
    for name, arguments in [("runCode", {"code": "1"}), ("executeCode", {"code": "1", "language": "javascript"})]:
        with pytest.raises(sandbox.client.exceptions.ValidationException) as raised:
            sandbox.client.invoke_code_interpreter(
                codeInterpreterIdentifier=IDENTIFIER, sessionId=session, name=name, arguments=arguments
            )
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_or_ended_session_is_not_found(sandbox: Sandbox) -> None:
    client = sandbox.client
    errors = client.exceptions.ResourceNotFoundException
    with pytest.raises(errors) as raised:
        sandbox.run("UNKNOWN0SESSION", "print(1)")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404  # an HTTP error, before any stream
    with pytest.raises(errors):
        sandbox.get("UNKNOWN0SESSION")
    with pytest.raises(errors):
        client.stop_code_interpreter_session(codeInterpreterIdentifier=IDENTIFIER, sessionId="UNKNOWN0SESSION")
    session = sandbox.start()
    with pytest.raises(errors):  # a session belongs to its code interpreter
        client.get_code_interpreter_session(codeInterpreterIdentifier="other-interpreter", sessionId=session)
    client.stop_code_interpreter_session(codeInterpreterIdentifier=IDENTIFIER, sessionId=session)
    with pytest.raises(errors):
        sandbox.run(session, "print(1)")
    with pytest.raises(errors):
        sandbox.invoke(session, "listFiles", directoryPath="")


def test_wall_clock_limit_kills_the_sandbox_and_ends_the_session(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_CODE_MAX_EXECUTION_SECONDS", "1")
    session = sandbox.start()
    pids = sandbox.value(
        session,
        """
        import json, os, subprocess
        child = subprocess.Popen(['sleep', '60'])
        print(json.dumps([os.getpid(), child.pid, os.getcwd()]))
        """,
    )
    started = time.monotonic()
    result = sandbox.run(session, "import time\nprint('working')\ntime.sleep(30)")
    assert time.monotonic() - started < 10
    assert result["isError"] is True and result["structuredContent"]["exitCode"] == 137
    assert "1 second limit" in result["structuredContent"]["stderr"]
    assert sandbox.get(session)["status"] == "TERMINATED"
    assert wait_for(lambda: not alive(pids[0]) and not alive(pids[1]))  # the whole process group
    assert not Path(pids[2]).exists()
    with pytest.raises(sandbox.client.exceptions.ResourceNotFoundException):
        sandbox.run(session, "print(1)")


def test_session_lifetime_and_idle_time_end_sessions(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    short = sandbox.start(sessionTimeoutSeconds=1)
    pid, cwd = sandbox.value(short, "import json, os\nprint(json.dumps([os.getpid(), os.getcwd()]))")
    assert wait_for(lambda: not alive(pid) and not Path(cwd).exists(), timeout=5)  # the reaper, unasked
    assert sandbox.get(short)["status"] == "TERMINATED"

    monkeypatch.setenv("LOCAL_CODE_IDLE_SECONDS", "1")
    idle = sandbox.start()
    monkeypatch.delenv("LOCAL_CODE_IDLE_SECONDS")
    busy = sandbox.start()
    assert sandbox.get(idle)["status"] == "READY"
    time.sleep(1.6)
    assert sandbox.get(idle)["status"] == "TERMINATED"
    assert sandbox.get(busy)["status"] == "READY"  # settings are read when a session starts


def test_environment_is_scrubbed(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    session = sandbox.start()
    environment = sandbox.value(session, "import json, os\nprint(json.dumps(dict(os.environ)))")
    assert set(environment) <= ALLOWED_ENVIRONMENT, set(environment) - ALLOWED_ENVIRONMENT
    cwd = sandbox.value(session, "import json, os\nprint(json.dumps(os.getcwd()))")
    assert environment["HOME"] == cwd and environment["MPLBACKEND"] == "Agg"
    assert environment["TMPDIR"].startswith(cwd + os.sep) and environment["MPLCONFIGDIR"].startswith(cwd + os.sep)
    assert "do-not-leak" not in json.dumps(environment)


def test_sessions_are_isolated(sandbox: Sandbox) -> None:
    first, second = sandbox.start(), sandbox.start()
    sandbox.run(first, "secret = 42\nopen('mine.txt', 'w').write('first')")
    result = sandbox.run(second, "secret")
    assert result["isError"] and "NameError" in result["structuredContent"]["stderr"]
    assert sandbox.invoke(second, "readFiles", paths=["mine.txt"])["isError"] is True
    assert "mine.txt" not in {b["name"] for b in sandbox.invoke(second, "listFiles", directoryPath="")["content"]}
    directories = [sandbox.value(s, "import json, os\nprint(json.dumps(os.getcwd()))") for s in (first, second)]
    assert directories[0] != directories[1]
    assert sandbox.run(first, "print(secret)")["structuredContent"]["stdout"] == "42\n"


def test_sessions_run_in_parallel_and_one_session_runs_one_call_at_a_time(sandbox: Sandbox) -> None:
    sessions = [sandbox.start(), sandbox.start()]
    clients = [sandbox.make_client() for _ in range(4)]

    def concurrently(targets: list[str], seconds: float) -> tuple[float, list[str]]:
        """Each call sleeps, then prints its own index; returns the elapsed time and the outputs."""
        outputs = [""] * len(targets)

        def call(index: int) -> None:
            code = f"import time\ntime.sleep({seconds})\nprint({index})"
            outputs[index] = sandbox.run(targets[index], code, clients[index])["structuredContent"]["stdout"]

        started = time.monotonic()
        threads = [threading.Thread(target=call, args=(index,)) for index in range(len(targets))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started, outputs

    elapsed, outputs = concurrently(sessions, 1)
    assert elapsed < 1.8 and outputs == ["0\n", "1\n"]
    elapsed, outputs = concurrently([sessions[0]] * 4, 0.3)
    assert elapsed >= 1.2 and outputs == [f"{index}\n" for index in range(4)]  # each call got its own reply

    # A file tool waits for the execution in progress, as the sandbox serves one request at a time.
    seen: list[str] = []

    def check_late_file() -> None:
        code = "import os, time\ntime.sleep(1)\nprint(os.path.exists('late.txt'))"
        seen.append(sandbox.run(sessions[1], code, clients[0])["structuredContent"]["stdout"])

    running = threading.Thread(target=check_late_file)
    running.start()
    time.sleep(0.3)
    sandbox.invoke(sessions[1], "writeFiles", content=[{"path": "late.txt", "text": "x"}])
    running.join()
    assert seen == ["False\n"]


def test_session_quota_and_fault_injection(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sandbox.client
    quota = {"operation": "StartCodeInterpreterSession", "error": "ServiceQuotaExceededException"}
    assert sandbox.fault(quota) == (200, {**quota, "times": 1})
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as raised:
        sandbox.start()
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402
    session = sandbox.start()  # times defaults to 1

    status, _ = sandbox.fault({"operation": "InvokeCodeInterpreter", "error": "ThrottlingException", "times": 2})
    assert status == 200
    for _ in range(2):
        with pytest.raises(client.exceptions.ThrottlingException):
            sandbox.run(session, "print(1)")
    assert sandbox.run(session, "print(1)")["structuredContent"]["stdout"] == "1\n"
    assert sandbox.fault({"operation": "NoSuchOperation", "times": 1})[0] == 400
    assert sandbox.fault({"operation": "GetCodeInterpreterSession", "error": "NotAnError"})[0] == 400
    assert sandbox.fault({"function": "AgentStepFunction", "times": 1})[0] == 400  # no functions run here

    monkeypatch.setenv("LOCAL_CODE_SESSIONS_MAX", "2")
    sandbox.start()
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        sandbox.start()
    client.stop_code_interpreter_session(codeInterpreterIdentifier=IDENTIFIER, sessionId=session)
    sandbox.start()  # a stopped session no longer counts


def test_resource_limits_apply_to_the_sandbox(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_CODE_FILE_MB", "1")
    monkeypatch.setenv("LOCAL_CODE_MEMORY_MB", "1024")
    session = sandbox.start()
    too_big = sandbox.run(session, "open('big.bin', 'wb').write(b'x' * (2 << 20))")
    assert too_big["isError"] and "File too large" in too_big["structuredContent"]["stderr"]
    if sys.platform != "darwin":
        memory = sandbox.run(session, "block = bytearray(2 << 30)")
        assert memory["isError"] and "MemoryError" in memory["structuredContent"]["stderr"]
    assert sandbox.run(session, "print('alive')")["structuredContent"]["stdout"] == "alive\n"

    monkeypatch.setenv("LOCAL_CODE_CPU_SECONDS", "1")
    spinning = sandbox.start()
    result = sandbox.run(spinning, "while True:\n    pass")
    assert result["isError"] and "sandbox process ended" in result["structuredContent"]["stderr"]
    assert sandbox.get(spinning)["status"] == "TERMINATED"


@pytest.mark.skipif(not SANDBOX_PYTHON, reason="no sandbox interpreter with pandas and matplotlib")
def test_sandbox_interpreter_runs_data_libraries(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_CODE_INTERPRETER_PYTHON", SANDBOX_PYTHON)
    session = sandbox.start()
    result = sandbox.run(
        session,
        """
        import sys
        import matplotlib.pyplot as plt
        import pandas as pd
        frame = pd.DataFrame({'x': [1, 2, 3], 'y': [2, 4, 8]})
        frame.plot(x='x', y='y').get_figure().savefig('plot.png')
        print(sys.executable, int(frame['y'].sum()))
        """,
    )
    assert result["structuredContent"]["stdout"] == f"{SANDBOX_PYTHON} 14\n", result
    png = sandbox.invoke(session, "readFiles", paths=["plot.png"])["content"][0]["resource"]
    assert png["type"] == "blob" and png["blob"].startswith(b"\x89PNG")


_EXIT_SCRIPT = """
import json, threading, time
import boto3
from botocore.config import Config
from local.aws import _exit_with_parent
from local.emulator.server import emulated_moto

with emulated_moto() as url:
    def client():
        return boto3.client("bedrock-agentcore", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                            aws_secret_access_key="x", config=Config(read_timeout=120))

    def run(code):
        stream = client().invoke_code_interpreter(codeInterpreterIdentifier="aws.codeinterpreter.v1",
                                                  sessionId=session, name="executeCode", arguments={"code": code})
        return list(stream["stream"])

    session = client().start_code_interpreter_session(codeInterpreterIdentifier="aws.codeinterpreter.v1")["sessionId"]
    print(run("import json, os; print(json.dumps([os.getpid(), os.getcwd()]))")[0]["result"]["structuredContent"]
          ["stdout"].strip(), flush=True)
    threading.Thread(target=run, args=("import time; time.sleep(60)",), daemon=True).start()
    time.sleep(0.5)  # the worker is busy: it would notice its parent's death only after a second
    _exit_with_parent()
    print("armed", flush=True)
    threading.Event().wait()
"""


@pytest.mark.parametrize("how", ["stdin closes", "SIGKILL"])
def test_workers_die_with_the_emulated_aws(how: str) -> None:
    """The local stack's exit path (os._exit when stdin closes) kills the workers before it exits;
    if the emulated AWS is killed outright, each worker notices its parent is gone and kills its
    own group."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'core' / 'python'}{os.pathsep}{ROOT}"}
    process = subprocess.Popen(
        [sys.executable, "-c", _EXIT_SCRIPT], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        pid, cwd = json.loads(process.stdout.readline())
        assert process.stdout.readline() == b"armed\n"
        assert alive(pid) and Path(cwd).is_dir()
        if how == "SIGKILL":
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert wait_for(lambda: not alive(pid) and not Path(cwd).exists(), timeout=5)
        else:
            process.stdin.close()
            process.wait(timeout=10)
            assert not alive(pid) and not Path(cwd).exists()  # killed before the exit, not after
    finally:
        process.kill()
        process.wait()


def test_event_stream_frames_decode_with_botocore() -> None:
    body = {"content": [{"type": "text", "text": "héllo"}], "isError": False}
    frame = agentcore_eventstream.event("result", body)
    buffer = EventStreamBuffer()
    buffer.add_data(frame + agentcore_eventstream.exception("ThrottlingException", "slow down"))
    first, second = list(buffer)
    assert first.headers == {":event-type": "result", ":content-type": "application/json", ":message-type": "event"}
    assert json.loads(first.payload) == body
    assert second.headers[":message-type"] == "exception" and second.headers[":exception-type"] == "ThrottlingException"
    corrupted = bytearray(frame)
    corrupted[-6] ^= 1
    broken = EventStreamBuffer()
    broken.add_data(bytes(corrupted))
    with pytest.raises(ChecksumMismatch):
        list(broken)


def test_fault_requests_reach_functions_and_agentcore_alike() -> None:
    """On the emulated AWS's port, a ``{"function": ...}`` fault still reaches the local stack's
    own route (the body intact), and the gateway forwards ``{"operation": ...}`` faults there."""
    import asyncio

    from local.emulator.server import FAULTS_PATH, SerializedMotoServer
    from local.gateway import Gateway

    received: list[bytes] = []

    def functions_faults(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        received.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"function": "F", "times": 1}']

    server = SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False, routes={FAULTS_PATH: functions_faults})
    server.start()
    try:
        host, port = server.get_host_and_port()
        sandbox = Sandbox(f"http://{host}:{port}")
        assert sandbox.fault({"function": "F", "times": 1}) == (200, {"function": "F", "times": 1})
        assert json.loads(received[0]) == {"function": "F", "times": 1}
        body = {"operation": "GetCodeInterpreterSession", "error": "InternalServerException", "times": 1}
        assert sandbox.fault(body)[0] == 200 and len(received) == 1
        with pytest.raises(sandbox.client.exceptions.InternalServerException):
            sandbox.get("ANYSESSION")
    finally:
        server.stop()

    forwarded: list[bytes] = []

    def forward_fault(request: bytes) -> tuple[int, bytes]:
        forwarded.append(request)
        return 200, request

    gateway = Gateway.__new__(Gateway)  # only what _inject_fault reads: no template, no functions
    gateway.function_names, gateway.functions = set(), None  # type: ignore[assignment]
    gateway.forward_fault = forward_fault
    sent: list[dict[str, Any]] = []
    raw = json.dumps(body).encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(gateway._inject_fault(receive, send))
    assert forwarded == [raw] and sent[0]["status"] == 200
