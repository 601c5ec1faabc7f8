"""Every key of the table, built in one place (see ``docs/data-model.md``)."""

from __future__ import annotations


def tenant_pk(tenant: str) -> str:
    return f"T#{tenant}"


def thread_pk(tenant: str, thread_id: str) -> str:
    return f"T#{tenant}#THREAD#{thread_id}"


def run_log_pk(tenant: str, run_id: str) -> str:
    return f"T#{tenant}#RUN#{run_id}"


THREAD_SK = "THREAD"
ASSISTANT_PREFIX = "ASST#"
MESSAGE_PREFIX = "MSG#"
RUN_PREFIX = "RUN#"
EVENT_PREFIX = "EVT#"
# DynamoDB items hold at most 400 KB; an append larger than this spreads over several items.
EVENT_ITEM_BYTES = 300_000
API_KEYS_PK = "APIKEY"
API_KEY_PREFIX = "KEY#"


def step_prefix(run_id: str) -> str:
    return f"STEP#{run_id}#"


def step_sk(run_id: str, step_id: str) -> str:
    return step_prefix(run_id) + step_id


def event_sk(seq: int) -> str:
    return f"{EVENT_PREFIX}{seq:010d}"
