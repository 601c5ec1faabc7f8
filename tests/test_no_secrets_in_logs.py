"""Provider keys and API keys never appear in logs, error bodies or events.

One stack with a recognisable provider key (``OPENAI_API_KEY``, what litellm sends the fake model)
and API keys of its own runs the failure cases end to end: unknown, revoked and malformed API
keys, another tenant's objects, invalid requests, a model that answers 401 (echoing the key it
was sent, as a careless provider might), 429 and 500 or breaks mid-stream, code that prints its
environment, a file_search over a missing store. Logging is at its most verbose: the functions at
DEBUG, and Powertools asked (``POWERTOOLS_LOGGER_LOG_EVENT``) to log every event the handlers get.
Then every line of the stack's log, every error body and every SSE event is searched for each
key, its base64 forms and any 12 characters in a row of its random part.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from assistants_core import api_keys
from assistants_core.repository import Repository
from local.lambda_runtime import free_port
from tests.conftest import start_local_stack, stop
from tests.harness.fake_llm import FakeLLM, break_midstream, error, rate_limited, server_error, text, tool_calls
from tests.harness.scenario import TERMINAL, fake_name, wait_for

WINDOW = 12  # this many characters of a secret's random part in a row is a leak (a masked key shows 4)


def _secret(prefix: str) -> tuple[str, str]:
    core = uuid.uuid4().hex + uuid.uuid4().hex
    return prefix + core, core


PROVIDER_KEY, PROVIDER_CORE = _secret("sk-provider-")
API_KEY, API_CORE = _secret("sk-sa-alpha-")
OTHER_KEY, OTHER_CORE = _secret("sk-sa-beta-")
REVOKED_KEY, REVOKED_CORE = _secret("sk-sa-revoked-")
UNKNOWN_KEY, UNKNOWN_CORE = _secret("sk-sa-unknown-")
SECRETS = {
    "provider key": (PROVIDER_KEY, PROVIDER_CORE),
    "API key": (API_KEY, API_CORE),
    "other tenant's API key": (OTHER_KEY, OTHER_CORE),
    "revoked API key": (REVOKED_KEY, REVOKED_CORE),
    "unknown API key": (UNKNOWN_KEY, UNKNOWN_CORE),
}


def _needles(secret: str, core: str) -> list[str]:
    forms = [secret, f"Bearer {secret}"]
    needles = [secret]
    needles += [base64.b64encode(form.encode()).decode().rstrip("=")[:-4] for form in forms]
    needles += [core[i : i + WINDOW] for i in range(len(core) - WINDOW + 1)]
    return needles


def leaks(text_: str) -> list[str]:
    """Which secrets ``text_`` shows, in any of the searched forms."""
    return [name for name, (secret, core) in SECRETS.items() if any(n in text_ for n in _needles(secret, core))]


@pytest.fixture(scope="module")
def secret_stack(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Any]]:
    aws_port = free_port()
    log_path = tmp_path_factory.mktemp("secrets") / "local-stack.log"
    env = {
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": PROVIDER_KEY,
        "ASSISTANTS_API_KEYS": f"{API_KEY}=team-alpha,{OTHER_KEY}=team-beta,{REVOKED_KEY}=team-revoked",
        "LOCAL_AWS_PORT": str(aws_port),
        # Every function at DEBUG, and no authorizer cache, so that a revoked key is refused at once.
        "LOCAL_PARAMETERS": "LogLevel=DEBUG,AuthorizerCacheSeconds=0",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
    }
    process, url = start_local_stack(log_path, env)
    yield url, f"http://127.0.0.1:{aws_port}", log_path
    stop(process)


def _client(url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def _failed_body(call: Any, seen: list[str]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as raised:
        call()
    seen.append(raised.value.response.text)
    assert raised.value.status_code < 500, raised.value.response.text
    return raised.value


def _stream_run(http: httpx.Client, thread_id: str, assistant_id: str, seen: list[str]) -> None:
    body = {"assistant_id": assistant_id, "stream": True}
    with http.stream("POST", f"/v1/threads/{thread_id}/runs", json=body) as response:
        seen.append(response.read().decode())


def test_failures_show_no_key_in_logs_errors_or_events(
    secret_stack: tuple[str, str, Any], fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, aws_url, log_path = secret_stack
    seen: list[str] = []  # every error body and SSE stream the clients got
    alpha, beta = _client(url, API_KEY), _client(url, OTHER_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "assistants=v2"}
    http = httpx.Client(base_url=url, headers=headers, timeout=60)

    # API keys: unknown, revoked, malformed (no Bearer scheme), another tenant's objects.
    _client(url, REVOKED_KEY).beta.assistants.list()
    for name, value in {"AWS_ENDPOINT_URL": aws_url, "AWS_ACCESS_KEY_ID": "l", "AWS_SECRET_ACCESS_KEY": "l"}.items():
        monkeypatch.setenv(name, value)
    api_keys.revoke_key(Repository("AssistantsTable"), api_keys.hash_key(REVOKED_KEY))
    for key in (UNKNOWN_KEY, REVOKED_KEY):
        assert _failed_body(_client(url, key).beta.assistants.list, seen).status_code == 401
    raw = httpx.get(f"{url}/v1/assistants", headers={"Authorization": API_KEY})
    seen.append(raw.text)
    assert raw.status_code == 401
    model = f"openai/secrets-{uuid.uuid4().hex[:8]}"
    assistant = alpha.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}])
    assert _failed_body(lambda: beta.beta.assistants.retrieve(assistant.id), seen).status_code == 404

    # Invalid requests.
    _failed_body(lambda: alpha.beta.assistants.create(model=model, temperature=7), seen)
    _failed_body(lambda: alpha.beta.threads.runs.create("thread_missing", assistant_id=assistant.id), seen)
    response = http.post("/v1/assistants", content=b"{not json", headers={"Content-Type": "application/json"})
    seen.append(response.text)
    assert response.status_code == 400
    _failed_body(
        lambda: alpha.beta.assistants.create(
            model=model,
            tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": ["vs_missing"]}},
        ),
        seen,
    )

    # Model failures, each a run that fails: the provider refuses the key (and echoes it), is
    # rate limited, errs, breaks mid-stream; and code that prints the environment it runs in.
    echo = f"Incorrect API key provided: {PROVIDER_KEY}. Authorization: Bearer {PROVIDER_KEY}"
    fake_llm.script(
        fake_name(model),
        [
            error(401, echo, "invalid_request_error", "invalid_api_key"),
            rate_limited(f"Rate limit reached for key {PROVIDER_KEY}"),
            server_error(f"Internal error handling key {PROVIDER_KEY}"),
            break_midstream(),
            tool_calls([("call_env", "python", {"code": "import os\nprint(dict(os.environ))\nraise SystemExit(3)"})]),
            text("Done."),
        ],
    )
    thread = alpha.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    for _ in range(4):
        _stream_run(http, thread.id, assistant.id, seen)
        run = alpha.beta.threads.runs.list(thread.id, limit=1).data[0]
        run = wait_for(alpha, thread.id, run.id, TERMINAL)
        assert run.status == "failed" and run.last_error is not None
        seen.append(run.model_dump_json())
    _stream_run(http, thread.id, assistant.id, seen)
    run = wait_for(alpha, thread.id, alpha.beta.threads.runs.list(thread.id, limit=1).data[0].id, TERMINAL)
    steps = alpha.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
    seen += [run.model_dump_json(), steps.model_dump_json()]
    assert any("code_interpreter" in s.step_details.model_dump_json() for s in steps.data)
    http.close()

    assert any("Incorrect API key" in body for body in seen)  # the provider's message did come through
    bodies = [(i, leaks(body)) for i, body in enumerate(seen)]
    assert not [found for found in bodies if found[1]], [seen[i][:2000] for i, found in bodies if found]
    log = log_path.read_text(errors="replace").splitlines()
    assert any('"location":"decorate' in line for line in log)  # Powertools did log events
    leaked = [(line[:3000], leaks(line)) for line in log if leaks(line)]
    assert not leaked, json.dumps(leaked, indent=1)


def test_the_api_handlers_never_log_their_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """On AWS the API functions get API Gateway's event, headers and all, through mangum (the local
    gateway serves their apps directly): even with POWERTOOLS_LOGGER_LOG_EVENT set, no key."""
    from fastapi import FastAPI

    from assistants_core.api.lambda_entry import logger, mangum_handler
    from tests.test_handlers import FakeLambdaContext, load_event

    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # read when the handler is made
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        logger.info("health checked")  # a line of the handler's own, to see that the output is captured
        return {"status": "ok"}

    event = load_event("health")
    event["headers"] = {**(event.get("headers") or {}), "Authorization": f"Bearer {API_KEY}"}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    underlying = logging.getLogger(logger.name)  # where Powertools' Logger writes through
    level = underlying.level
    underlying.addHandler(capture)
    underlying.setLevel(logging.INFO)  # events are logged at INFO (other tests may have set WARNING)
    try:
        response = mangum_handler(app)(event, FakeLambdaContext())
    finally:
        underlying.removeHandler(capture)
        underlying.setLevel(level)
    assert response["statusCode"] == 200
    assert "health checked" in stream.getvalue()  # the handler's logs were captured; the event was not among them
    assert not leaks(stream.getvalue()), stream.getvalue()[:3000]
