"""The chat messages a model turn sees, built from the thread and this run's steps.

History is the thread's messages from before the run (newest ``last_messages`` of them when
the truncation strategy says so), then this run's own steps: the assistant's messages and
each round of tool calls with their outputs, paired by ``tool_call_id``. When
``max_prompt_tokens`` is set, the oldest history is dropped until the prompt fits, counting
tokens with tiktoken.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from ..types import Message, Run, RunStep


def _content(message: Message) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif kind == "image_url":
            image = {"url": part["image_url"]["url"]}
            if part["image_url"].get("detail"):
                image["detail"] = part["image_url"]["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "image_file":
            parts.append({"type": "text", "text": f"[image file {part['image_file']['file_id']}]"})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def history(messages: list[Message], run: Run) -> list[dict[str, Any]]:
    """The thread's messages from before this run, as chat messages."""
    earlier = [m for m in messages if m.run_id != run.id]
    strategy = run.truncation_strategy or {}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        earlier = earlier[-int(strategy["last_messages"]) :]
    return [{"role": m.role, "content": _content(m)} for m in earlier]


def run_turns(steps: list[RunStep], run_messages: dict[str, Message]) -> list[dict[str, Any]]:
    """This run's earlier turns: assistant messages, tool calls and their outputs."""
    turns: list[dict[str, Any]] = []
    for step in steps:
        if step.type == "message_creation":
            message = run_messages.get(step.step_details["message_creation"]["message_id"])
            if message is not None and message.text():
                turns.append({"role": "assistant", "content": message.text()})
        else:
            calls = [c for c in step.tool_calls() if c.get("type") == "function"]
            if not calls:
                continue
            turns.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
            for call in calls:
                output = call["function"].get("output")
                turns.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": output if output is not None else ""}
                )
    return turns


@lru_cache(maxsize=8)
def _encoding(model: str) -> Any:
    from importlib import resources

    # tiktoken would download its encodings; litellm ships them, so point tiktoken there.
    os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR", str(resources.files("litellm").joinpath("litellm_core_utils/tokenizers"))
    )
    import tiktoken

    name = model.rsplit("/", 1)[-1]
    try:
        return tiktoken.encoding_for_model(name)
    except KeyError:
        return tiktoken.get_encoding(
            "o200k_base" if name.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")) else "cl100k_base"
        )


def warm_up() -> None:
    """Load the common encodings at cold start rather than on the first run."""
    _encoding("gpt-4o")
    _encoding("gpt-4")


def count_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as OpenAI counts chat messages: each message costs 3 plus its text."""
    encoding = _encoding(model)
    total = 3
    for message in messages:
        total += 3
        content = message.get("content")
        if isinstance(content, str):
            total += len(encoding.encode(content))
        elif isinstance(content, list):
            total += sum(
                len(encoding.encode(p.get("text", ""))) + (85 if p["type"] == "image_url" else 0) for p in content
            )
        for call in message.get("tool_calls") or []:
            total += len(encoding.encode(call["function"]["name"])) + len(
                encoding.encode(call["function"]["arguments"])
            )
    return total


def count_text(model: str, text: str) -> int:
    return len(_encoding(model).encode(text))


def fit(
    model: str,
    system: list[dict[str, Any]],
    earlier: list[dict[str, Any]],
    turns: list[dict[str, Any]],
    budget: int | None,
) -> list[dict[str, Any]] | None:
    """System + as much recent history as fits + this run's turns; None if nothing fits."""
    if budget is None:
        return system + earlier + turns
    kept = list(earlier)
    while True:
        messages = system + kept + turns
        if count_tokens(model, messages) <= budget:
            return messages if (kept or turns or not earlier) else None
        if not kept:
            return None
        kept.pop(0)
