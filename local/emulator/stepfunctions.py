"""moto's Step Functions, made cheaper and faithful where the local stack needs it.

Installed in the emulated AWS process before moto serves a request.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any


def cache_asl_parsing() -> None:
    """Parse each state machine definition once, not once per execution.

    moto parses ASL with a pure-Python ANTLR parser (about 25 ms of CPU per execution for
    run.asl.json, holding the GIL the whole process shares). The parsed program keeps no
    execution state (that lives in the interpreter's Environment), so one parse serves all.
    """
    import functools

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    if not hasattr(AmazonStateLanguageParser.parse, "cache_info"):
        AmazonStateLanguageParser.parse = staticmethod(functools.lru_cache(maxsize=32)(AmazonStateLanguageParser.parse))  # type: ignore[method-assign]


def share_service_clients() -> None:
    """One boto3 client per (region, service) for the state machines' service integrations.

    moto's ``boto_client_for`` builds a new client (10+ ms of CPU) for every task: every
    ``lambda:invoke`` and every ``aws-sdk:dynamodb`` call. It is imported by name into several
    modules, so each module's reference is replaced (modules imported later get the new one).

    A service-specific endpoint variable (``AWS_ENDPOINT_URL_DYNAMODB``...) is honoured with the
    environment's credentials, as the app's boto3 does: when the app's tables live in DynamoDB
    Local, the state machine's ``updateItem`` must write there too. Other services keep moto's
    choices (its own endpoint, dummy credentials).
    """
    import boto3
    from botocore.config import Config
    from botocore.utils import CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES, SERVICE_NAME_ALIASES
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module

    original = boto_client_module.boto_client_for
    if getattr(original, "shared_clients", False):
        return
    session = boto3.session.Session()  # boto3's default session is not safe to share across threads
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()
    config = Config(
        parameter_validation=False,
        retries={"max_attempts": 0, "total_max_attempts": 1},
        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        max_pool_connections=64,  # a lambda:invoke holds its connection for a whole agent turn
    )

    def create(region: str, service: str) -> Any:
        service_id = CLIENT_NAME_TO_HYPHENIZED_SERVICE_ID_OVERRIDES.get(
            SERVICE_NAME_ALIASES.get(service, service), SERVICE_NAME_ALIASES.get(service, service)
        )
        endpoint = os.environ.get(f"AWS_ENDPOINT_URL_{service_id.replace('-', '_').upper()}")
        kwargs: dict[str, Any] = {"endpoint_url": endpoint}
        if not endpoint:
            kwargs = {"aws_access_key_id": "ak", "aws_secret_access_key": "sk"}
            if not botocore_stubber.enabled:
                kwargs["endpoint_url"] = f"http://localhost:{moto_server_port()}"
        return session.client(service, region_name=region, config=config, **kwargs)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = clients.get((region, service))
        if client is None:
            with lock:
                client = clients.get((region, service))
                if client is None:
                    client = clients[(region, service)] = create(region, service)
        return client

    boto_client_for.shared_clients = True  # type: ignore[attr-defined]
    boto_client_module.boto_client_for = boto_client_for  # type: ignore[assignment]
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def shorten_waits(definition: str) -> str:
    """With LOCAL_TASK_TIMEOUT_SECONDS, callback waits time out sooner (tests of expiry)."""
    override = os.environ.get("LOCAL_TASK_TIMEOUT_SECONDS")
    if not override:
        return definition
    parsed = json.loads(definition)
    for state in parsed["States"].values():
        if str(state.get("Resource", "")).endswith(".waitForTaskToken") and "TimeoutSeconds" in state:
            state["TimeoutSeconds"] = int(override)
    return json.dumps(parsed)
