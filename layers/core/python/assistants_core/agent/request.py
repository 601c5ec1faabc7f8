"""What one turn asks the model: the conversation so far and the tools it may call, built from
the thread's messages and the run's steps, and what the turn must know of the run so far to
read the answer (search results it may cite, files and images its code made).

Tools the service runs itself are offered as functions (``file_search``, ``python``); once the
run has used one, a ``tool_choice`` that forced it is spent, and past their limits the model
is told to answer (``tool_choice`` ``none``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..code_interpreter import calls as code_calls
from ..code_interpreter import files as code_files
from ..code_interpreter import tool as code_tool
from ..repository import THREAD_SK, Repository, StoredDoc
from ..services.lifecycle import RunRef
from ..types import Message, Run, RunStep, Usage
from . import citations, file_search
from .conversation import count_tokens, fit, history, run_turns
from .images import image_loader
from .model import ModelRequest


@dataclass
class TurnPlan:
    request: ModelRequest | None  # None: not even the run's own turns fit max_prompt_tokens
    prompt_tokens: int = 0
    citation_table: citations.CitationTable = field(default_factory=dict)
    searches_before: int = 0  # file_search calls of this run's earlier turns
    code_paths: dict[str, str] | None = None  # file id -> name in /mnt/data; None: no code tool
    code_calls_before: int = 0  # code_interpreter calls of this run's earlier turns
    output_files: dict[str, str] = field(default_factory=dict)  # /mnt/data path -> file id the code wrote
    new_images: list[str] = field(default_factory=list)  # images the code made that no message shows yet


def plan_request(
    repo: Repository,
    ref: RunRef,
    run: Run,
    thread_items: dict[str, StoredDoc],
    used: Usage,
    search: file_search.SearchSettings | None,
    search_more: bool,
) -> TurnPlan:
    messages = [Message.model_validate(s.doc) for s in thread_items.values() if s.doc.get("object") == "thread.message"]
    run_steps = [
        s for s in thread_items.values() if s.doc.get("object") == "thread.run.step" and s.doc.get("run_id") == run.id
    ]
    steps = [RunStep.model_validate(s.doc) for s in run_steps]
    arguments: dict[str, str] = {}
    code_results: dict[str, dict[str, Any]] = {}
    for s in run_steps:
        arguments.update(json.loads(str(s.attributes.get("search_arguments") or "{}")))
        code_results.update(json.loads(str(s.attributes.get(code_calls.RESULTS_ATTRIBUTE) or "{}")))
    plan = TurnPlan(request=None, citation_table=citations.table_from([s.doc for s in run_steps]))
    plan.searches_before = sum(1 for s in steps for c in s.tool_calls() if c.get("type") == "file_search")
    _read_code_results(plan, run, steps, messages, code_results)

    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    budget = None if run.max_prompt_tokens is None else run.max_prompt_tokens - used.prompt_tokens
    conversation = fit(
        run.model,
        system,
        history(messages, run, image_loader(repo, ref.tenant)),
        run_turns(steps, {m.id: m for m in messages}, arguments, code_results),
        budget,
    )
    if conversation is None:
        return plan
    tools = [t for t in run.tools if t.get("type") == "function"]
    choice = run.tool_choice
    if search is not None:
        tools.append(file_search.TOOL_DEFINITION)
        choice = file_search.tool_choice(choice, searched=plan.searches_before > 0) if search_more else "none"
    elif isinstance(choice, dict) and choice.get("type") == "file_search":
        choice = "auto"  # nothing to search: the search tool is not offered, so it cannot be named
    if any(t.get("type") == "code_interpreter" for t in run.tools):
        thread = thread_items.get(THREAD_SK)
        plan.code_paths = code_files.available_files(
            repo, ref.tenant, run.assistant_id, thread.doc if thread else None, messages
        )
        tools.append(code_tool.tool_definition([code_files.model_path(p) for p in plan.code_paths.values()]))
        ran = plan.code_calls_before > 0
        if ran and choice == "required":
            choice = "auto"  # the model ran code: it may answer now
        choice = code_tool.tool_choice(choice, ran=ran)
        if plan.code_calls_before >= code_tool.MAX_CALLS or not search_more:
            choice = "none"
    elif isinstance(choice, dict) and choice.get("type") == "code_interpreter":
        choice = "auto"
    max_tokens = None if run.max_completion_tokens is None else run.max_completion_tokens - used.completion_tokens
    plan.request = ModelRequest(
        model=run.model,
        messages=conversation,
        tools=tools,
        tool_choice=choice if tools else None,
        parallel_tool_calls=run.parallel_tool_calls if tools else None,
        temperature=run.temperature,
        top_p=run.top_p,
        response_format=run.response_format,
        max_tokens=max_tokens,
        reasoning_effort=run.reasoning_effort,
    )
    plan.prompt_tokens = count_tokens(run.model, conversation)
    return plan


def _read_code_results(
    plan: TurnPlan, run: Run, steps: list[RunStep], messages: list[Message], results: dict[str, dict[str, Any]]
) -> None:
    """What this run's code produced so far: files the answer may link, images to show."""
    plan.code_calls_before = sum(1 for s in steps for c in s.tool_calls() if c.get("type") == "code_interpreter")
    shown = {
        part["image_file"]["file_id"]
        for m in messages
        if m.run_id == run.id
        for part in m.content
        if part.get("type") == "image_file"
    }
    for result in results.values():
        plan.output_files.update({f["path"]: f["file_id"] for f in result.get("files") or []})
        plan.new_images += [i for i in result.get("images") or [] if i not in shown and i not in plan.new_images]
