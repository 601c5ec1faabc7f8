"""Helpers the layers' Makefiles share when `sam build` builds a layer that sits on others.

Layers unpack into the same /opt/python, where a later layer's file overwrites an earlier
one's, so a layer built on top of others must ship each shared distribution at the others'
version, or not at all:

    python layer_build.py freeze STAGE > constraints.txt     # name==version of every distribution
    python layer_build.py leave-out STAGE TARGET             # delete from TARGET what STAGE holds
    python layer_build.py architecture TEMPLATE LAYER        # the layer's BuildArchitecture

`sam build` runs a makefile build without telling it the architecture (aws-lambda-builders'
custom_make workflow passes ARTIFACTS_DIR only), so layers/platform.mk asks the template.
"""

from __future__ import annotations

import csv
import pathlib
import re
import shutil
import sys


def freeze(stage: pathlib.Path) -> None:
    for info in sorted(stage.glob("*.dist-info")):
        name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
        print(f"{name}=={version}")


def leave_out(stage: pathlib.Path, target: pathlib.Path) -> None:
    """Delete, file by file (from RECORD), every distribution of ``target`` that ``stage`` holds."""
    target = target.resolve()
    left_out = []
    for info in sorted(stage.glob("*.dist-info")):
        mine = target / info.name
        if not mine.is_dir():
            continue
        with open(mine / "RECORD", newline="") as handle:
            for row in csv.reader(handle):
                path = (target / row[0]).resolve()
                if path.is_relative_to(target) and path.is_file():
                    path.unlink()
        shutil.rmtree(mine, ignore_errors=True)
        left_out.append(info.name[: -len(".dist-info")])
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    print(f"{target.parent.name}: left out {len(left_out)} distributions that the layers below ship")


def architecture(template: pathlib.Path, layer: str) -> str:
    """The Metadata BuildArchitecture of the resource ``layer`` in the SAM template. Read with a
    pattern, not a YAML parser: the build's Python has only the standard library, and the
    template's short-form tags (!Ref, !Sub) need a loader of their own."""
    block = re.search(rf"^  {re.escape(layer)}:\n((?:    .*\n|\s*\n)+)", template.read_text(), re.MULTILINE)
    found = re.findall(r"^      BuildArchitecture: (arm64|x86_64)\s*$", block.group(1) if block else "", re.MULTILINE)
    if len(found) != 1:
        raise SystemExit(f"{template}: {layer} has no Metadata BuildArchitecture (arm64 or x86_64)")
    return found[0]


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    if command == "freeze":
        freeze(pathlib.Path(paths[0]))
    elif command == "leave-out":
        leave_out(pathlib.Path(paths[0]), pathlib.Path(paths[1]))
    elif command == "architecture":
        print(architecture(pathlib.Path(paths[0]), paths[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
