"""SnapStart: the after-restore hooks run, and redo what a snapshot must not keep.

- the local Lambda runtime runs a SnapStart function's hooks as AWS's runtime does: init, the
  before-snapshot hooks (last registered first), then, before the first invocation of each
  restored environment, the after-restore hooks (in registration order); not for other functions;
- ``assistants_core.snapstart``'s hooks close every boto3 client's pooled connections, renew the
  default session, reseed ``random``, and read provider credentials again (a key rotated since
  the snapshot);
- end to end, through the SDK: the agent step of a local stack loads its provider key; the
  key is rotated in the emulated SSM; the next restored environment's run reaches the model with
  the new key.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from openai import OpenAI

from local import template as cfn
from local.lambda_runtime import RUNTIME_PATH, Functions, InvocationFailed, free_port
from tests.harness.fake_llm import FakeLLM, text

PATH = "/serverless-assistants/providers/"


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local ``snapshot_restore_py`` on the path (as Lambda's runtime has it), registries empty."""
    monkeypatch.syspath_prepend(str(RUNTIME_PATH))
    module = importlib.import_module("snapshot_restore_py")
    module.get_before_snapshot().clear()
    module.get_after_restore().clear()
    yield module
    module.get_before_snapshot().clear()
    module.get_after_restore().clear()


def _function(tmp_path: Path, name: str, snap_start: bool, body: str) -> cfn.FunctionSpec:
    code = tmp_path / name
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(body))
    return cfn.FunctionSpec(name, code, "app.handler", {}, {}, snap_start=snap_start)


APP = """
    from snapshot_restore_py import register_after_restore, register_before_snapshot

    calls = []

    calls.append("init")
    register_before_snapshot(calls.append, "before 1")
    register_before_snapshot(calls.append, "before 2")


    @register_after_restore
    def first():
        calls.append("after 1")


    register_after_restore(calls.append, "after 2")


    def handler(event, context):
        calls.append("invoke")
        if event.get("fail_next_restore"):
            register_after_restore(fail)
        return list(calls)


    def fail():
        raise RuntimeError("cannot reconnect")
"""


def test_the_emulator_runs_init_then_before_snapshot_then_after_restore_before_the_first_invocation(
    hooks: Any, tmp_path: Path
) -> None:
    functions = Functions({"Snappy": _function(tmp_path, "Snappy", True, APP)})
    module = functions.module("Snappy")
    # The snapshot: init, then the before-snapshot hooks, last registered first; nothing restored yet.
    assert module.calls == ["init", "before 2", "before 1"]

    first = ["init", "before 2", "before 1", "after 1", "after 2", "invoke"]
    assert functions.invoke("Snappy", {}) == first
    # The same environment again: no restore.
    assert functions.invoke("Snappy", {}) == [*first, "invoke"]

    # A new environment restored from the snapshot (Lambda scaling out): the after-restore hooks
    # again, the before-snapshot hooks not (the snapshot exists).
    assert functions.restore("Snappy")[0] == 200
    assert functions.invoke("Snappy", {}) == [*first, "invoke", "after 1", "after 2", "invoke"]


def test_a_failing_after_restore_hook_fails_the_invocation_as_lambda_reports_it(hooks: Any, tmp_path: Path) -> None:
    functions = Functions({"Snappy": _function(tmp_path, "Snappy", True, APP)})
    functions.invoke("Snappy", {"fail_next_restore": True})
    functions.restore("Snappy")
    with pytest.raises(InvocationFailed) as failed:
        functions.invoke("Snappy", {})
    assert failed.value.error_type == "Runtime.AfterRestoreError"
    assert "cannot reconnect" in str(failed.value)


def test_a_function_without_snapstart_runs_no_hooks(hooks: Any, tmp_path: Path) -> None:
    functions = Functions({"Plain": _function(tmp_path, "Plain", False, APP)})
    assert functions.invoke("Plain", {}) == ["init", "invoke"]
    assert functions.restore("Plain")[0] == 400


def test_the_template_gives_the_agent_step_snapstart_and_the_parameter_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_PARAMETERS", raising=False)
    specs = cfn.functions(cfn.load_template())
    assert [name for name, spec in specs.items() if spec.snap_start] == ["AgentStepFunction"]
    monkeypatch.setenv("LOCAL_PARAMETERS", "SnapStart=Disabled")
    assert not any(spec.snap_start for spec in cfn.functions(cfn.load_template()).values())


# ---------------------------------------------------------------- the app's hooks


@pytest.fixture
def snapstart(hooks: Any) -> Iterator[Any]:
    """``assistants_core.snapstart`` imported where the runtime provides the hooks module."""
    module = importlib.import_module("assistants_core.snapstart")
    hooks.get_before_snapshot().clear()  # a first import registered already: once, from the reload
    hooks.get_after_restore().clear()
    module = importlib.reload(module)
    assert module.registered
    yield module


def test_the_hooks_register_with_the_runtime_and_not_without_one(
    snapstart: Any, hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [f for f, _, _ in hooks.get_before_snapshot()] == [snapstart.before_snapshot]
    assert [f for f, _, _ in hooks.get_after_restore()] == [snapstart.after_restore]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # no Lambda runtime: ImportError
    assert snapstart.register() is False


def test_work_loaded_before_the_snapshot_runs_first_in_the_order_given_and_only_with_a_runtime(
    snapstart: Any, hooks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local.lambda_runtime import run_before_snapshot

    done: list[str] = []
    monkeypatch.setattr(snapstart, "before_snapshot", lambda: done.append("connections closed"))
    hooks.get_before_snapshot().clear()
    hooks.register_before_snapshot(lambda: snapstart.before_snapshot())  # as register() did, first
    snapstart.load_before_snapshot(lambda: done.append("litellm"), lambda: done.append("tokenizers"))
    run_before_snapshot()
    assert done == ["litellm", "tokenizers", "connections closed"]

    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # no Lambda runtime: nothing registered
    snapstart.load_before_snapshot(lambda: done.append("never"))
    assert hooks.get_before_snapshot() == []


def test_the_agent_steps_init_leaves_litellm_and_the_tokenizers_to_the_snapshot(hooks: Any) -> None:
    """A SnapStart init loads them before its snapshot; a plain cold start (no hooks run) does not."""
    from assistants_core import tokens
    from assistants_core.agent import model

    importlib.reload(importlib.import_module("assistants_core.snapstart"))
    hooks.get_before_snapshot().clear()
    spec = importlib.util.spec_from_file_location(
        "agent_step_app", Path(__file__).parents[1] / "functions/agent_step/app.py"
    )
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert [f for f, _, _ in hooks.get_before_snapshot()] == [tokens.warm_up, model.warm_up]  # run last first


def test_after_restore_closes_every_clients_connections_renews_the_session_and_reseeds_random(
    snapstart: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TABLE_NAME", "t")
    from assistants_core.repository import default_repository

    default_repository.cache_clear()
    repository = default_repository()  # clients made after the import: their sessions are tracked
    powertools_like = boto3.session.Session().client("ssm")  # Powertools makes a session of its own
    clients = [repository.client, powertools_like]
    for client in clients:  # a pooled connection (what init's first request leaves)
        client._endpoint.http_session._manager.connection_from_url("https://example.com")
        assert len(client._endpoint.http_session._manager.pools) == 1
    session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
    assert session is not None
    random.seed(1)
    snapshot_draw = random.random()
    random.seed(1)  # the state the snapshot would carry into every environment

    snapstart.after_restore()

    assert random.random() != snapshot_draw
    for client in clients:  # kept (rebuilding one costs 0.1-0.3 s), without the snapshot's sockets
        assert len(client._endpoint.http_session._manager.pools) == 0
    assert default_repository() is repository
    assert boto3.DEFAULT_SESSION is not session
    loader = boto3.DEFAULT_SESSION._session.get_component("data_loader")  # type: ignore[union-attr]
    assert loader is session._session.get_component("data_loader")  # the service models stay loaded


def test_after_restore_reads_rotated_provider_credentials(snapstart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistants_core.agent import model

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "t")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MODEL_CREDENTIALS_PATH", PATH)
    monkeypatch.delenv("MODEL_CREDENTIALS_SECRET", raising=False)
    monkeypatch.setenv("SA_SNAP_SET_BY_ENVIRONMENT", "from-environment")
    monkeypatch.delenv("SA_SNAP_KEY", raising=False)
    monkeypatch.setattr(model, "_credentials_loaded", False)
    monkeypatch.setattr(model, "_credential_names", set())
    with mock_aws():
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name=PATH + "SA_SNAP_KEY", Value="key-one", Type="SecureString")
        ssm.put_parameter(Name=PATH + "SA_SNAP_SET_BY_ENVIRONMENT", Value="from-ssm", Type="SecureString")
        model.load_provider_credentials()  # init: captured in the snapshot
        assert model.os.environ["SA_SNAP_KEY"] == "key-one"

        ssm.put_parameter(Name=PATH + "SA_SNAP_KEY", Value="key-two", Type="SecureString", Overwrite=True)
        model.load_provider_credentials()  # once loaded, a plain call reads nothing
        assert model.os.environ["SA_SNAP_KEY"] == "key-one"
        snapstart.after_restore()
        parameters.clear_caches()
    assert model.os.environ["SA_SNAP_KEY"] == "key-two"
    assert model.os.environ["SA_SNAP_SET_BY_ENVIRONMENT"] == "from-environment"  # the environment still wins
    monkeypatch.delenv("SA_SNAP_KEY")


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_restored_agent_step_uses_the_provider_key_rotated_since_its_snapshot(
    fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import start_local_stack, stop

    # The key comes from SSM only, as on AWS: nothing in the environment to fall back on.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    aws_port = free_port()
    process, url = start_local_stack(
        tmp_path / "local-stack.log",
        {"OPENAI_BASE_URL": fake_llm.base_url, "ASSISTANTS_API_KEYS": "", "LOCAL_AWS_PORT": str(aws_port)},
    )
    try:
        ssm = boto3.client(
            "ssm",
            endpoint_url=f"http://127.0.0.1:{aws_port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-snapstart", max_retries=0, timeout=60)
        model = "openai/snapstart-rotation"
        assistant = client.beta.assistants.create(model=model)

        def run_with_key(key: str) -> str:
            """Rotate the key, then run in an environment restored from the snapshot: the model's
            Authorization header."""
            ssm.put_parameter(Name=PATH + "OPENAI_API_KEY", Value=key, Type="SecureString", Overwrite=True)
            restore = {"function": "AgentStepFunction", "restore": True}
            assert httpx.post(f"{url}/_local/faults", json=restore, timeout=10).status_code == 200
            fake_llm.script(model, text("hello"))
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
            run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
            assert run.status == "completed", run.last_error
            return fake_llm.recorded(model.removeprefix("openai/"))[-1].headers["authorization"]

        # The agent step reads its credentials before its first model call; a restore's hook reads
        # them again, so the key rotated since reaches the model.
        assert run_with_key("sk-provider-one") == "Bearer sk-provider-one"
        assert run_with_key("sk-provider-two") == "Bearer sk-provider-two"
    finally:
        stop(process)


def test_closing_connections_closes_the_direct_model_adapters_clients(snapstart: Any) -> None:
    from assistants_core.agent.models import openai_chat

    client = openai_chat._client()
    snapstart.close_connections()
    assert client.is_closed and openai_chat._clients == {}
    assert not openai_chat._client().is_closed  # the next turn gets a new one
    openai_chat.close_clients()
