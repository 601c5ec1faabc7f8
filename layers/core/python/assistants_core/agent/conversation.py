"""The chat messages a model turn sees, built from the thread and this run's steps.

History is the thread's messages from before the run (newest ``last_messages`` of them when
the truncation strategy says so), then this run's own steps: the assistant's messages and
each round of tool calls with their outputs, paired by ``tool_call_id``. When
``max_prompt_tokens`` is set, the oldest history is dropped until the prompt fits, counting
tokens with tiktoken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import tokens
from ..code_interpreter import tool as code_tool
from ..types import Message, Run, RunStep
from .citations import tool_output

ImageLoader = Callable[[str], str | None]  # file id -> a data: URL of the image, None if none


def _content(message: Message, images: ImageLoader | None) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif kind == "image_file" and message.role == "assistant":
            # A chart the code drew: providers take images from users only, and the model saw it made.
            parts.append({"type": "text", "text": f"\n[image {part['image_file']['file_id']} shown to the user]"})
        elif kind in ("image_url", "image_file"):
            source = part[kind]
            url = source.get("url") if kind == "image_url" else (images(source["file_id"]) if images else None)
            if url is None:
                parts.append({"type": "text", "text": f"[image file {source['file_id']} is not available]"})
                continue
            image = {"url": url}
            if source.get("detail"):
                image["detail"] = source["detail"]
            parts.append({"type": "image_url", "image_url": image})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def history(messages: list[Message], run: Run, images: ImageLoader | None = None) -> list[dict[str, Any]]:
    """The thread's messages from before this run, as chat messages; ``image_file`` parts
    become the images themselves (``images`` loads them), as a vision model needs."""
    earlier = [m for m in messages if m.run_id != run.id]
    strategy = run.truncation_strategy or {}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        earlier = earlier[-int(strategy["last_messages"]) :]
    return [{"role": m.role, "content": _content(m, images)} for m in earlier]


def run_turns(
    steps: list[RunStep],
    run_messages: dict[str, Message],
    search_arguments: dict[str, str] | None = None,
    code_results: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """This run's earlier turns: assistant messages, tool calls and their outputs.

    A ``file_search`` call is given back as the model made it (a call of the ``file_search``
    function, with the arguments kept in ``search_arguments`` by call id) with its results as
    the output, numbered as the citation markers count calls across the run. A
    ``code_interpreter`` call is a call of the ``python`` function, with what its code printed
    and wrote (``code_results`` by call id) as the output."""
    turns: list[dict[str, Any]] = []
    search_number = 0
    for step in steps:
        if step.type == "message_creation":
            message = run_messages.get(step.step_details["message_creation"]["message_id"])
            if message is not None and message.text():
                turns.append({"role": "assistant", "content": message.text()})
            continue
        calls, outputs = [], []
        for call in step.tool_calls():
            if call.get("type") == "function":
                function = call["function"]
                calls.append(
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": function["arguments"]},
                    }
                )
                output = function.get("output")
                outputs.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": output if output is not None else ""}
                )
            elif call.get("type") == "file_search":
                arguments = (search_arguments or {}).get(call["id"], '{"queries": []}')
                calls.append(
                    {"id": call["id"], "type": "function", "function": {"name": "file_search", "arguments": arguments}}
                )
                results = (call.get("file_search") or {}).get("results") or []
                outputs.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": tool_output(search_number, results)}
                )
                search_number += 1
            elif call.get("type") == "code_interpreter":
                calls.append(code_tool.model_call(call))
                result = (code_results or {}).get(call["id"]) or {}
                outputs.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": code_tool.model_output(call, result)}
                )
        if calls:
            turns.append({"role": "assistant", "content": None, "tool_calls": calls})
            turns += outputs
    return turns


def count_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as OpenAI counts chat messages: each message costs 3 plus its text."""
    # encode_ordinary: a message that quotes "<|endoftext|>" is text, not an error.
    encoding = tokens.encoding(model)
    total = 3
    for message in messages:
        total += 3
        content = message.get("content")
        if isinstance(content, str):
            total += len(encoding.encode_ordinary(content))
        elif isinstance(content, list):
            total += sum(
                len(encoding.encode_ordinary(p.get("text", ""))) + (85 if p["type"] == "image_url" else 0)
                for p in content
            )
        for call in message.get("tool_calls") or []:
            total += len(encoding.encode_ordinary(call["function"]["name"])) + len(
                encoding.encode_ordinary(call["function"]["arguments"])
            )
    return total


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
