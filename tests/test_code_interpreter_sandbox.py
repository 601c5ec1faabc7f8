"""The AgentCore adapter and the runner it installs, against the emulated AgentCore: what the
model's code can do to a session, and what the service keeps of a call, whatever the code does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import boto3
import httpx
import pytest
from botocore.config import Config

from assistants_core.code_interpreter.sandbox import Limits, Sandbox, SessionGone, limits
from local.emulator.server import emulated_moto


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with emulated_moto() as url:
        client = boto3.client(
            "bedrock-agentcore",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(read_timeout=120, retries={"total_max_attempts": 1}),
        )
        yield Sandbox(client=client)


@pytest.fixture
def session(sandbox: Sandbox) -> Iterator[str]:
    session_id = sandbox.start("thread_test", 600)
    yield session_id
    sandbox.stop(session_id)


def quick() -> Limits:
    return replace(limits(), call_seconds=10)


def test_the_models_names_cannot_break_the_runner(sandbox: Sandbox, session: str) -> None:
    shadowing = "os = json = signal = sys = ast = traceback = 1\nprint = repr = None\nlen = 0"
    assert not sandbox.execute(session, shadowing, quick()).error
    written = sandbox.execute(session, "open('/mnt/data/a.txt', 'w').write('x')\n2 + 2", quick())
    assert not written.error
    assert written.logs == "4\n"
    assert [f.path for f in written.files] == ["a.txt"]
    slow = sandbox.execute(session, "while True:\n    pass", replace(limits(), call_seconds=1))
    assert slow.timed_out  # the time limit still holds


def test_paths_show_as_mnt_data_and_files_appear_there(sandbox: Sandbox, session: str) -> None:
    sandbox.write_file(session, "in.csv", b"a,b\n1,2\n")
    run = sandbox.execute(
        session, "import os\nprint(os.path.abspath('in.csv'))\nprint(sorted(os.listdir('/mnt/data')))", quick()
    )
    assert run.logs == "/mnt/data/in.csv\n['in.csv']\n"
    failed = sandbox.execute(session, "open('/mnt/data/missing.txt')", quick())
    assert "No such file or directory: '/mnt/data/missing.txt'" in failed.logs
    assert failed.error


def test_a_flood_of_output_is_capped(sandbox: Sandbox, session: str) -> None:
    run = sandbox.execute(session, "for _ in range(300):\n    print('x' * 10_000)", quick())
    assert "[output cut" in run.logs
    assert len(run.logs) < quick().logs_characters + 200
    assert sandbox.execute(session, "'still here'", quick()).logs == "'still here'\n"


def test_a_file_too_large_or_unreadable_is_reported_not_kept(sandbox: Sandbox, session: str) -> None:
    code = (
        "import os\n"
        "open('/mnt/data/big.bin', 'wb').write(os.urandom(3_000_000))\n"
        "open('/mnt/data/small.txt', 'w').write('ok')\n"
        "os.symlink('/etc/hostname', '/mnt/data/link')"
    )
    run = sandbox.execute(session, code, replace(quick(), file_bytes=1_000_000))
    assert [f.path for f in run.files] == ["small.txt"]
    assert run.too_large == ["big.bin"]  # the link is not the code's file to give


def test_a_session_that_dies_running_the_code_is_lost_not_rerun(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_CODE_MAX_EXECUTION_SECONDS", "2")  # the sandbox's own wall clock
    session_id = sandbox.start("thread_dies", 600)
    run = sandbox.execute(session_id, "import time\ntime.sleep(30)", replace(limits(), call_seconds=60))
    assert run.session_lost and run.error
    assert "session ended while this code ran" in run.logs
    with pytest.raises(SessionGone):  # the next call learns it before running anything
        sandbox.execute(session_id, "1", quick())


def test_a_call_waits_while_the_session_is_busy(sandbox: Sandbox, session: str) -> None:
    """AgentCore answers ConflictException while a session still runs a call (a cancelled run's
    code runs on): the next call waits for it rather than failing its run."""
    url = sandbox.client.meta.endpoint_url
    fault = {"operation": "InvokeCodeInterpreter", "error": "ConflictException", "times": 2}
    assert httpx.post(f"{url}/_local/faults", json=fault).status_code == 200
    started = time.monotonic()
    run = sandbox.execute(session, "'done'", quick())
    assert run.logs == "'done'\n"
    assert time.monotonic() - started >= 4  # two busy answers, two seconds apart
