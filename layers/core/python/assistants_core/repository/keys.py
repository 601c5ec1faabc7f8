"""Every key of the table, built (and read back) in one place (see ``docs/data-model.md``)."""

from __future__ import annotations


def tenant_pk(tenant: str) -> str:
    return f"T#{tenant}"


def tenant_of(pk: str) -> str:
    """The tenant of a :func:`tenant_pk` key."""
    return pk.removeprefix("T#")


def object_id_of(sk: str) -> str:
    """The id in a sort key made of a prefix and an id (``FILE#file-...`` -> ``file-...``)."""
    return sk.split("#", 1)[1]


def split_pk(pk: str) -> tuple[str, str] | None:
    """The tenant of a partition key and what follows it (``""`` for :func:`tenant_pk`), or None
    for a key outside every tenant (the API-key directory). Tenant ids have no ``#``."""
    if not pk.startswith("T#"):
        return None
    tenant, _, rest = pk[2:].partition("#")
    return tenant, rest


def thread_pk(tenant: str, thread_id: str) -> str:
    return f"T#{tenant}#THREAD#{thread_id}"


def run_log_pk(tenant: str, run_id: str) -> str:
    return f"T#{tenant}#RUN#{run_id}"


def rate_limit_pk(tenant: str, key_id: str) -> str:
    """An API key's rate limit items (its request bucket and its runs in progress)."""
    return f"T#{tenant}#KEY#{key_id}"


RATE_REQUESTS_SK = "RATE#REQUESTS"
RATE_RUNS_SK = "RATE#RUNS"


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


# Retrieval: files, uploads and vector stores.
FILE_PREFIX = "FILE#"  # a file, under tenant_pk; a store's file, under vector_store_pk
UPLOAD_PREFIX = "UPLOAD#"
PART_PREFIX = "PART#"
VECTOR_STORE_PREFIX = "VS#"  # a store, under tenant_pk; a file's membership, under file_stores_pk
BATCH_PREFIX = "BATCH#"


def upload_pk(tenant: str, upload_id: str) -> str:
    """An upload's parts."""
    return f"T#{tenant}#UPLOAD#{upload_id}"


def vector_store_pk(tenant: str, vector_store_id: str) -> str:
    """A store's files and file batches."""
    return f"T#{tenant}#VS#{vector_store_id}"


def vector_store_of(pk: str) -> tuple[str, str]:
    """The tenant and the store of a :func:`vector_store_pk` key."""
    tenant, _, vector_store_id = tenant_of(pk).rpartition("#VS#")
    return tenant, vector_store_id


def file_stores_pk(tenant: str, file_id: str) -> str:
    """The stores a file is in: what deleting the file must clean up."""
    return f"T#{tenant}#FILE#{file_id}"


# Idempotency records (Powertools Idempotency): one item per tenant, method, path and key.
IDEMPOTENCY_SK = "IDEM"


def idempotency_prefix(tenant: str) -> str:
    """What an idempotency record's partition key starts with; Powertools appends ``#<hash>``."""
    return f"T#{tenant}#IDEM"
