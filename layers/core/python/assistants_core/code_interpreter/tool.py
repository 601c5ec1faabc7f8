"""The ``code_interpreter`` tool as the model sees it, and its calls as run steps record them.

Providers other than OpenAI have no built-in interpreter, so the model gets a function named
``python`` (what OpenAI's models called theirs) whose one argument is the code. Its calls are
recorded as ``code_interpreter`` tool calls; the code streams into ``code_interpreter.input``
deltas as the model writes it (:class:`CodeInput`), and the state machine runs it
(:mod:`.calls`) between two model turns.
"""

from __future__ import annotations

import json
import re
from typing import Any

FUNCTION_NAME = "python"
# How many calls one run may make; then the model must answer (tool_choice "none").
MAX_CALLS = 10
_CODE_KEY = re.compile(r'"code"\s*:\s*"')


def tool_definition(file_paths: list[str]) -> dict[str, Any]:
    """The function the model calls to run code; it names the files the code can read."""
    files = (
        "These files are there: " + ", ".join(file_paths) + "."
        if file_paths
        else "No files were given; you may create files there."
    )
    return {
        "type": "function",
        "function": {
            "name": FUNCTION_NAME,
            "description": (
                "Run Python code in a stateful session, like a Jupyter notebook: variables, imports and files "
                "persist between calls in this conversation, and what the code prints and the value of its last "
                "expression come back to you. numpy, pandas and matplotlib are available; do not rely on internet "
                "access. Use it for calculations, data analysis and charts. Files live in /mnt/data. " + files + " "
                "Charts drawn with matplotlib are shown to the user. To give the user a file, save it under "
                "/mnt/data and link it in your answer as sandbox:/mnt/data/<name>. Calls are stopped after a time "
                "limit."
            ),
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python code to run."}},
                "required": ["code"],
            },
        },
    }


def tool_choice(choice: Any, *, ran: bool) -> Any:
    """A run's ``tool_choice`` as the model's: naming code_interpreter names the function, once."""
    if isinstance(choice, dict) and choice.get("type") == "code_interpreter":
        return "auto" if ran else {"type": "function", "function": {"name": FUNCTION_NAME}}
    return choice


def code_of(arguments: str) -> str:
    """The code of a complete call: its ``code`` argument, or the raw text when the model sent
    code rather than JSON."""
    stripped = arguments.strip()
    if not stripped.startswith("{"):
        return arguments
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return partial_code(arguments)
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return str(parsed["code"])
    return ""


def partial_code(arguments: str) -> str:
    """The part of the ``code`` string the model has written so far (decoded), from partial JSON."""
    if not arguments.lstrip().startswith("{"):
        return arguments
    found = _CODE_KEY.search(arguments)
    if found is None:
        return ""
    body = arguments[found.end() :]
    end, i = len(body), 0
    while i < len(body):
        char = body[i]
        if char == '"':
            end = i
            break
        if char == "\\":
            width = 6 if body[i + 1 : i + 2] == "u" else 2
            if i + width > len(body):  # an escape cut in two: wait for the rest
                end = i
                break
            i += width
            continue
        i += 1
    try:
        decoded = str(json.loads('"' + body[:end] + '"'))
    except ValueError:
        return ""
    if decoded and "\ud800" <= decoded[-1] <= "\udbff":  # half of a surrogate pair
        decoded = decoded[:-1]
    return decoded


class CodeInput:
    """What of a python call's code has streamed: :meth:`advance`, given the call's arguments so
    far, returns the code they add."""

    def __init__(self) -> None:
        self.sent = ""

    def advance(self, arguments: str) -> str:
        code = partial_code(arguments)
        if not code.startswith(self.sent):  # cannot happen with valid JSON; never send a contradiction
            return ""
        new, self.sent = code[len(self.sent) :], code
        return new


def code_call(call_id: str, code: str) -> dict[str, Any]:
    """A ``code_interpreter`` tool call as a run step records it, before its code has run."""
    return {"id": call_id, "type": "code_interpreter", "code_interpreter": {"input": code, "outputs": []}}


def model_call(call: dict[str, Any]) -> dict[str, Any]:
    """A recorded call as the model made it: a call of the python function."""
    code = call["code_interpreter"]["input"]
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": FUNCTION_NAME, "arguments": json.dumps({"code": code})},
    }


def model_output(call: dict[str, Any], result: dict[str, Any]) -> str:
    """What the model reads of a call it made: the logs, then what the service has to say."""
    logs = "".join(o.get("logs") or "" for o in call["code_interpreter"].get("outputs") or [] if o["type"] == "logs")
    return "\n".join(filter(None, [logs or "(no output)", *(result.get("notes") or [])]))
