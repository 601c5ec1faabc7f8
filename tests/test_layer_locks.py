"""The layers' requirements are locks: every package pinned with its files' hashes, and installed
with --require-hashes, so that a release replaced or published after the lock (a compromised
litellm was) cannot enter `sam build` unnoticed. `make lock` regenerates them from the .in files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local.template import ROOT

LAYERS = ("core", "models", "ingest")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?P<marker>\s*;[^\\]*)?$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def locked(layer: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a layer's requirements.txt; fails on any line that is not a
    hash-pinned requirement (an option, a URL, a range, an unhashed pin)."""
    text = (ROOT / "layers" / layer / "requirements.txt").read_text()
    logical = re.sub(r"\\\n", " ", text)  # join continuation lines, as pip does
    found: dict[str, tuple[str, list[str]]] = {}
    for number, line in enumerate(logical.splitlines(), 1):
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        requirement, *options = line.split()
        match = PIN.match(requirement)
        assert match, f"layers/{layer}/requirements.txt: {requirement!r} is not pinned with == (line {number})"
        assert options and all(HASH.match(option) for option in options), (
            f"layers/{layer}/requirements.txt: {requirement} has no sha256 hash, or another option: {options}"
        )
        name = canonicalize_name(match["name"])
        assert name not in found, f"layers/{layer}/requirements.txt pins {name} twice"
        found[name] = (match["version"], options)
    assert found, f"layers/{layer}/requirements.txt pins nothing"
    return found


def direct(layer: str) -> dict[str, str]:
    """name -> version of each direct dependency in a layer's requirements.in."""
    pins = {}
    for line in (ROOT / "layers" / layer / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"layers/{layer}/requirements.in: pin {line} with =="
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


@pytest.mark.parametrize("layer", LAYERS)
def test_every_requirement_of_every_layer_is_pinned_with_hashes(layer: str) -> None:
    lock = locked(layer)
    for name, version in direct(layer).items():
        assert name in lock, f"{name} of layers/{layer}/requirements.in is not locked: run `make lock`"
        assert lock[name][0] == version, f"{name}: .in says {version}, the lock {lock[name][0]}: run `make lock`"


def test_the_layers_share_each_package_at_one_version() -> None:
    """They unpack into one /opt/python: models and ingest are locked within core's versions."""
    seen: dict[str, tuple[str, str]] = {}
    for layer in LAYERS:
        for name, (version, _) in locked(layer).items():
            if name in seen:
                assert seen[name][0] == version, f"{name}: {seen[name][1]} locks {seen[name][0]}, {layer} {version}"
            seen[name] = (version, layer)


def test_the_litellm_pin_is_none_of_the_compromised_releases() -> None:
    version, _ = locked("models")["litellm"]
    assert version not in {"1.82.7", "1.82.8", "1.107.0"}


def test_the_builds_require_hashes() -> None:
    for layer in LAYERS:
        makefile = (ROOT / "layers" / layer / "Makefile").read_text()
        flags = re.search(r"^PIP_TARGET_FLAGS :=(.*?[^\\])$", makefile, re.MULTILINE | re.DOTALL)
        assert flags and "--require-hashes" in flags.group(1), f"layers/{layer}/Makefile"
        installs = [line for line in makefile.splitlines() if "pip install" in line]
        assert installs and all("$(PIP_TARGET_FLAGS)" in line for line in installs), installs
        # Each names its platform (layers/platform.mk): Lambda's, or this machine's for a step
        # that imports the layer here; never pip's default, the build machine's.
        assert all("$(FOR_LAMBDA)" in line or "$(FOR_HOST)" in line for line in installs), installs
    # The dev environment installs the direct dependencies (the .in files), not the locks, whose
    # hashes would put its whole install in hash-checking mode.
    dev = Path(ROOT / "requirements-dev.txt").read_text()
    assert "/requirements.txt" not in dev and all(f"-r layers/{layer}/requirements.in" in dev for layer in LAYERS)
