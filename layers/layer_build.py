"""Helpers the layers' Makefiles share when `sam build` builds a layer that sits on others.

Layers unpack into the same /opt/python, where a later layer's file overwrites an earlier
one's, so a layer built on top of others must ship each shared distribution at the others'
version, or not at all:

    python layer_build.py freeze STAGE > constraints.txt     # name==version of every distribution
    python layer_build.py leave-out STAGE TARGET             # delete from TARGET what STAGE holds
"""

from __future__ import annotations

import csv
import pathlib
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


if __name__ == "__main__":
    command, *paths = sys.argv[1:]
    if command == "freeze":
        freeze(pathlib.Path(paths[0]))
    elif command == "leave-out":
        leave_out(pathlib.Path(paths[0]), pathlib.Path(paths[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
