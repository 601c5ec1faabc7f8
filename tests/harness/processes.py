"""Helper processes of the tests and the benchmark (local stack, fake LLM): start, wait, stop."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_healthy(
    process: subprocess.Popen[bytes], health_url: str, log_path: Path, what: str, timeout: float
) -> None:
    """Wait for ``health_url`` to answer 200; fail with the process's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{what} did not become healthy in {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")


def terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a process politely, then firmly."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
