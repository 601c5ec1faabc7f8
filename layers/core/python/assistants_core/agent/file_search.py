"""The ``file_search`` tool inside a run: what the model is offered, how its calls run, and what
it reads back.

Providers other than OpenAI have no built-in search, so the model gets a function tool named
``file_search`` whose arguments are its queries. The agent step runs the search itself (over
the assistant's and the thread's vector stores, with the same code as the search endpoint),
records the call as a ``file_search`` tool call with its results, and gives the model the
passages, each behind a citation marker ``【<call>:<result>†<file name>】`` as OpenAI's models
wrote them. :mod:`.citations` turns the markers the answer repeats into ``file_citation``
annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .. import tokens
from ..errors import APIError
from ..repository import ASSISTANT_PREFIX, Repository, tenant_pk
from ..services.search import search
from ..services.vector_stores import StoreRecord, load_store
from ..types import Run
from ..types.vector_store import MAX_QUERY_CHARACTERS

FUNCTION_NAME = "file_search"
DEFAULT_RANKER = "default_2024_08_21"
# How many search rounds one run may make in a row before the model must answer.
MAX_ROUNDS = 4

TOOL_DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": FUNCTION_NAME,
        "description": (
            "Search the files the user uploaded (documents, notes, manuals, data) for passages relevant to the "
            "question. Use it whenever the answer may be in those files. Each result starts with a citation "
            "marker like 【0:1†name.pdf】; when you use a result, put its marker right after the sentence it "
            "supports, exactly as written."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "queries": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "One to five search queries, each a short, self-contained phrase or question.",
                }
            },
            "required": ["queries"],
        },
    },
}


def _is_small_model(model: str) -> bool:
    return "gpt-3.5" in model


@dataclass(frozen=True)
class SearchSettings:
    """What a run's file_search tool searches, and how (OpenAI's defaults where unset)."""

    tenant: str
    stores: list[StoreRecord]
    max_results: int
    score_threshold: float
    ranker: str
    token_budget: int

    def ranking_options(self) -> dict[str, Any]:
        return {"ranker": self.ranker, "score_threshold": self.score_threshold}

    def ingesting(self) -> bool:
        return any(record.store.file_counts.in_progress > 0 for record in self.stores)


def settings_for(repo: Repository, tenant: str, run: Run, thread_doc: dict[str, Any] | None) -> SearchSettings | None:
    """The run's file_search settings, or None when it has no file_search tool or nothing to search.

    Stores come from the assistant's and the thread's ``tool_resources``; one that was deleted
    or expired since is left out rather than failing the run."""
    tool = next((t for t in run.tools if t.get("type") == "file_search"), None)
    if tool is None:
        return None
    store_ids: list[str] = []
    assistant = repo.get_doc(tenant_pk(tenant), ASSISTANT_PREFIX + run.assistant_id) or {}
    for source in (assistant, thread_doc or {}):
        resources = (source.get("tool_resources") or {}).get("file_search") or {}
        store_ids += [s for s in resources.get("vector_store_ids") or [] if s not in store_ids]
    stores = []
    for store_id in store_ids:
        try:
            record = load_store(repo, tenant, store_id)
        except APIError:
            continue
        if not record.expired:
            stores.append(record)
    if not stores:
        return None
    options = tool.get("file_search") or {}
    ranking = options.get("ranking_options") or {}
    small = _is_small_model(run.model)
    return SearchSettings(
        tenant=tenant,
        stores=stores,
        max_results=int(options.get("max_num_results") or (5 if small else 20)),
        score_threshold=float(ranking.get("score_threshold") or 0.0),
        ranker=str(ranking.get("ranker") or DEFAULT_RANKER),
        token_budget=4_000 if small else 16_000,
    )


def tool_choice(choice: Any, *, searched: bool = False) -> Any:
    """A run's ``tool_choice`` as the model's: naming file_search names its function. Once the
    run has searched, a choice that forced the search (``required``, or file_search by name) is
    spent: the model may answer, rather than search again until the rounds run out."""
    forces_search = choice == "required" or (isinstance(choice, dict) and choice.get("type") == "file_search")
    if searched and forces_search:
        return "auto"
    if isinstance(choice, dict) and choice.get("type") == "file_search":
        return {"type": "function", "function": {"name": FUNCTION_NAME}}
    return choice


def queries_of(arguments: str) -> list[str]:
    """The model's queries, however it wrote them (a list, one string, or bare text), at most
    five, each cut to what an embedding model takes."""
    return [query[:MAX_QUERY_CHARACTERS] for query in _queries(arguments)]


def _queries(arguments: str) -> list[str]:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return [arguments.strip()] if arguments.strip() else []
    if isinstance(parsed, dict):
        value = parsed.get("queries", parsed.get("query"))
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [str(q) for q in value if str(q).strip()][:5]
    return []


def run_search(repo: Repository, settings: SearchSettings, model: str, arguments: str) -> list[dict[str, Any]]:
    """The call's results as the run step records them (with content), within the token budget."""
    queries = queries_of(arguments)
    if not queries:
        return []
    outcome = search(
        repo,
        settings.tenant,
        settings.stores,
        queries,
        max_results=settings.max_results,
        score_threshold=settings.score_threshold,
    )
    results: list[dict[str, Any]] = []
    spent = 0
    for hit in outcome.hits:
        cost = tokens.count(model, hit.text)
        if results and spent + cost > settings.token_budget:
            break
        spent += cost
        results.append(
            {
                "file_id": hit.file_id,
                "file_name": hit.file_name,
                "score": round(hit.score, 6),
                "content": [{"type": "text", "text": hit.text}],
            }
        )
    return results


def file_search_call(
    call_id: str, settings: SearchSettings | None, results: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """A ``file_search`` tool call as a run step records it."""
    body: dict[str, Any] = {
        "ranking_options": (
            settings.ranking_options() if settings else {"ranker": DEFAULT_RANKER, "score_threshold": 0.0}
        )
    }
    if results is not None:
        body["results"] = results
    return {"id": call_id, "type": "file_search", "file_search": body}
