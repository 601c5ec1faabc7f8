"""The unzipped size of every function as `sam build` makes it: its own code and its layers.

Lambda takes at most 250 MB unzipped for a function with all its layers: 262,144,000 bytes,
that is 250 MiB, the unit the table uses.
``python -m tests.package_size`` prints the table the README shows; tests/test_package_size.py
fails above the limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from local import template as cfn

LAMBDA_UNZIPPED_LIMIT = 262_144_000
MIB = 1024 * 1024
BUILD_DIR = Path(os.environ.get("SAM_BUILD_DIR") or cfn.ROOT / ".aws-sam" / "build")
# Layers this project does not build, by the ARN's layer name: their unzipped size, as published.
# The Lambda Web Adapter's layer holds one static binary (lambda-adapter, about 3 MB in 0.8/0.9).
EXTERNAL_LAYERS = {"LambdaAdapterLayerArm64": 4_000_000, "LambdaAdapterLayerX86": 4_000_000}
# ELF e_machine values (EM_X86_64, EM_AARCH64), by Lambda's name for the architecture.
ELF_MACHINES = {62: "x86_64", 183: "arm64"}


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@dataclass(frozen=True)
class FunctionSize:
    name: str
    code: int
    layers: dict[str, int]

    @property
    def total(self) -> int:
        return self.code + sum(self.layers.values())


def function_layers(name: str, template: dict | None = None) -> list[str | dict]:  # type: ignore[type-arg]
    """A function's layers in order: the Globals' first, then its own (SAM appends them)."""
    template = template or cfn.load_template()
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    own = template["Resources"][name]["Properties"].get("Layers", [])
    return [*global_layers, *own]


def function_architecture(name: str, template: dict | None = None) -> str:  # type: ignore[type-arg]
    """Lambda's name for a function's architecture: its own, else the Globals' (x86_64 without either)."""
    template = template or cfn.load_template()
    default = template.get("Globals", {}).get("Function", {}).get("Architectures", ["x86_64"])
    (architecture,) = template["Resources"][name]["Properties"].get("Architectures", default)
    return str(architecture)


def elf_architecture(path: Path) -> str | None:
    """The architecture an ELF file (a shared library, an executable) was built for; None for any
    other file. Read from the header (e_machine, in the byte order EI_DATA names)."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"e_machine {machine}")


def layer_name(layer: str | dict) -> str:  # type: ignore[type-arg]
    if isinstance(layer, dict) and "Ref" in layer:
        return str(layer["Ref"])
    text = layer["Fn::Sub"] if isinstance(layer, dict) else layer
    return str(text).split(":layer:")[1].split(":")[0]


def sizes(build_dir: Path = BUILD_DIR) -> list[FunctionSize]:
    template = cfn.load_template()
    layer_sizes: dict[str, int] = {}
    result = []
    for name in cfn.functions(template):
        layers = {}
        for layer in function_layers(name, template):
            key = layer_name(layer)
            if key not in layer_sizes:
                layer_sizes[key] = EXTERNAL_LAYERS[key] if key in EXTERNAL_LAYERS else tree_size(build_dir / key)
            layers[key] = layer_sizes[key]
        result.append(FunctionSize(name, tree_size(build_dir / name), layers))
    return sorted(result, key=lambda s: s.total, reverse=True)


def table(build_dir: Path = BUILD_DIR) -> str:
    lines = ["| function | its layers (MiB) | unzipped | of the limit |", "|---|---|---|---|"]
    for size in sizes(build_dir):
        layers = " + ".join(f"{name} {value / MIB:.1f}" for name, value in size.layers.items())
        share = size.total / LAMBDA_UNZIPPED_LIMIT
        lines.append(f"| {size.name} | {layers} | {size.total / MIB:.1f} MiB | {share:.0%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
