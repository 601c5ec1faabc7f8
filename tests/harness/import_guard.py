"""Import one function's handler module while the network is refused, and report what it tried.

``python -m tests.harness.import_guard --function NAME --out FILE`` (or ``--file PATH`` for any
``app.py``): apply the function's template environment (as the local stack does), refuse every
socket connect, UDP send and name lookup, recording each, then import the module as Lambda
would (``local.lambda_runtime.Functions``, its module-level warm-up included). The report
(JSON at ``--out``): ``attempts`` (what the import tried to reach) and ``error`` (the import's
exception, if it raised). ``tests/test_cold_imports.py`` runs it in a fresh process per function.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import traceback
from pathlib import Path
from typing import Any

from local import template as cfn
from local.lambda_runtime import Functions, apply_function_environment

attempts: list[str] = []


def _refused(kind: str) -> Any:
    def refuse(self_or_host: Any, *args: Any, **kwargs: Any) -> Any:
        target = args[-1] if kind == "sendto" and args else (args[0] if args else self_or_host)
        if kind == "getaddrinfo":
            target = (self_or_host, args[0] if args else kwargs.get("port"))
        attempts.append(f"{kind} {target!r}")
        if kind == "getaddrinfo":
            raise socket.gaierror(socket.EAI_NONAME, "name lookups are refused during the import")
        raise ConnectionRefusedError("connections are refused during the import")

    return refuse


def refuse_network() -> None:
    """Every way out of the process through the socket module, refused and recorded."""
    socket.socket.connect = _refused("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _refused("connect")  # type: ignore[method-assign]
    socket.socket.sendto = _refused("sendto")  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _refused("getaddrinfo")
    socket.create_connection = _refused("create_connection")


def import_function(name: str) -> None:
    template = cfn.load_template()
    functions = Functions({name: cfn.functions(template)[name]})
    apply_function_environment(functions.specs, cfn.planned_resolver(template))
    refuse_network()
    functions.module(name)


def import_file(path: Path) -> None:
    refuse_network()
    spec = importlib.util.spec_from_file_location("guarded_app", path)
    assert spec and spec.loader, path
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def main() -> None:
    parser = argparse.ArgumentParser()
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--function", help="a function of template.yaml (logical id)")
    target.add_argument("--file", type=Path, help="any module, imported by path")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    report: dict[str, Any] = {"attempts": attempts, "error": None}
    try:
        if args.function:
            import_function(args.function)
        else:
            import_file(args.file)
    except BaseException:  # reported, whatever it is (SystemExit included)
        report["error"] = traceback.format_exc(limit=8)
    with open(args.out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main()
