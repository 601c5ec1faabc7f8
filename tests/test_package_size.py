"""What `sam build` made (`make test` builds first): every function fits Lambda's 250 MB with its
layers, and the layers, trimmed to fit, still do what their functions need.

Each check runs the built layers in a fresh interpreter without site-packages (`python -S`), the
layers on the path in Lambda's order, so nothing of the development virtualenv can stand in
for a file the trimming removed.

The layers are built for the functions' architecture (arm64), whose native libraries cannot load
on another machine. Where this machine's architecture differs, the layers' Makefiles build a copy
for it (`LAMBDA_ARCHITECTURE=x86_64`: the same lock, versions, trimming and byte-compiling, only
the wheels' platform differs), the checks run that copy, and
`test_the_layers_run_here_are_the_built_layers_but_for_their_native_libraries` shows that the two
differ in nothing else. What that leaves unproven here: that the aarch64 libraries load and work
(they are the packages' own published aarch64 wheels, installed by hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from local import template as cfn
from local.template import load_template
from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.package_size import (
    BUILD_DIR,
    LAMBDA_UNZIPPED_LIMIT,
    MIB,
    elf_architecture,
    function_architecture,
    function_layers,
    layer_name,
    sizes,
)

pytestmark = pytest.mark.slow

HOST_ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine()
)


@pytest.fixture(scope="module")
def build_dir() -> Path:
    if not (BUILD_DIR / "template.yaml").is_file():
        if os.environ.get("SAM_BUILD_REQUIRED"):
            pytest.fail(f"no `sam build` output in {BUILD_DIR}: `make build` first", pytrace=False)
        pytest.skip(f"no `sam build` output in {BUILD_DIR} (`make test` builds it)")
    return BUILD_DIR


def test_every_function_fits_lambdas_unzipped_limit(build_dir: Path) -> None:
    measured = sizes(build_dir)
    functions = [r for r in load_template()["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert len(measured) == len(functions) >= 13  # every function of the template is measured
    for size in measured:
        assert size.total <= LAMBDA_UNZIPPED_LIMIT, (
            f"{size.name} is {size.total / MIB:.1f} MiB unzipped with its layers {size.layers}: over Lambda's 250 MiB"
        )
    # Room to grow where litellm is: the trimmed models layer leaves a margin.
    largest = max(measured, key=lambda s: s.total)
    assert LAMBDA_UNZIPPED_LIMIT - largest.total > 30 * MIB, f"{largest.name}: {largest.total / MIB:.1f} MiB"


def _own_layers() -> dict[str, dict]:  # type: ignore[type-arg]
    return cfn.resources(load_template(), "AWS::Serverless::LayerVersion")


def test_every_native_library_is_built_for_its_functions_architecture(build_dir: Path) -> None:
    """Every ELF file (shared library, executable) in a function's code and in each layer it
    carries is for the function's architecture: a wheel fetched for another platform fails here,
    before Lambda fails to load it."""
    template = load_template()
    found: dict[Path, dict[str, str]] = {}  # folder -> ELF file -> its architecture
    wrong = []
    for function in cfn.functions(template):
        expected = function_architecture(function, template)
        folders = [build_dir / function] + [
            build_dir / layer_name(layer) for layer in function_layers(function, template) if "Ref" in layer
        ]
        for folder in folders:
            if folder not in found:
                files = (f for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
                found[folder] = {str(f.relative_to(build_dir)): a for f in files if (a := elf_architecture(f))}
            wrong += [
                f"{path}: {arch}, {function} is {expected}" for path, arch in found[folder].items() if arch != expected
            ]
    assert not wrong, "\n".join(wrong[:20])
    # Not vacuous: the native packages are there (pydantic-core, tiktoken, jiter, regex, lxml, ...).
    native = {Path(path).parts[2] for files in found.values() for path in files}
    assert {"pydantic_core", "tiktoken", "jiter", "regex", "lxml", "cryptography"} <= native, sorted(native)


@pytest.fixture(scope="module")
def layers_dir(build_dir: Path) -> Path:
    """The built layers where this machine can import them, else a copy built for this machine
    by the same Makefiles (kept beside the build, rebuilt when `sam build` ran again)."""
    layers = _own_layers()
    if all(spec["Metadata"]["BuildArchitecture"] == HOST_ARCHITECTURE for spec in layers.values()):
        return build_dir
    copy = build_dir.parent / f"layers-{HOST_ARCHITECTURE}"
    built_from = str((build_dir / "template.yaml").stat().st_mtime_ns)
    stamp = copy / ".built-from"
    if stamp.is_file() and stamp.read_text() == built_from:
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    builds = {}
    for name, spec in layers.items():
        source = cfn.ROOT / spec["Properties"]["ContentUri"]
        command = ["make", "--makefile", str(source / "Makefile"), f"build-{name}", f"ARTIFACTS_DIR={copy / name}"]
        command += [f"LAMBDA_ARCHITECTURE={HOST_ARCHITECTURE}", f"PYTHON={sys.executable}"]
        with (copy / f"{name}.log").open("w") as log:  # the child keeps its own descriptor
            builds[name] = subprocess.Popen(command, cwd=source, stdout=log, stderr=subprocess.STDOUT)
    for name, build in builds.items():
        assert build.wait(timeout=900) == 0, (copy / f"{name}.log").read_text()[-4000:]
    stamp.write_text(built_from)
    return copy


def _contents(layer: Path) -> tuple[dict[str, str], Counter[str]]:
    """A layer's files but its native libraries (path -> sha256), and how many native libraries
    each top-level package has. A wheel's metadata (*.dist-info) counts by its paths only: its
    RECORD, WHEEL tag and SBOM name the platform. A .pyc counts by its header (magic number,
    unchecked-hash flag, the hash of its source): its code objects hold the path it was compiled at."""
    files, native = {}, Counter[str]()
    for path in sorted(layer.rglob("*")):
        relative = path.relative_to(layer)
        if not path.is_file():
            continue
        if elf_architecture(path):
            native[relative.parts[1].split(".")[0]] += 1  # a package, or a module (_cffi_backend.cpython-...so)
        elif path.suffix == ".pyc":
            files[str(relative)] = path.read_bytes()[:16].hex()
        elif any(part.endswith(".dist-info") for part in relative.parts):
            files[str(relative)] = "metadata"
        else:
            files[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, native


def test_the_layers_run_here_are_the_built_layers_but_for_their_native_libraries(
    build_dir: Path, layers_dir: Path
) -> None:
    if layers_dir == build_dir:
        pytest.skip("the built layers are for this machine's architecture: the checks below import them")
    for name in _own_layers():
        built, here = _contents(build_dir / name), _contents(layers_dir / name)
        assert built[0].keys() == here[0].keys(), (
            f"{name}: only built {sorted(built[0].keys() - here[0].keys())[:10]}, "
            f"only here {sorted(here[0].keys() - built[0].keys())[:10]}"
        )
        assert built[0] == here[0], [path for path in built[0] if built[0][path] != here[0][path]][:10]
        assert built[1] == here[1], name


def _run_with_layers(
    function: str, script: str, env: dict[str, str] | None = None, layers_dir: Path = BUILD_DIR
) -> str:
    """Run ``script`` as the function would import it: its code, then its layers (a later layer
    first, as a later layer's files win in /opt/python), and the standard library only."""
    layers = [layer_name(layer) for layer in function_layers(function)]
    paths = [str(BUILD_DIR / function)] + [str(layers_dir / name / "python") for name in reversed(layers)]
    prelude = f"import sys; sys.path[:0] = {json.dumps(paths)}\n"
    result = subprocess.run(
        [sys.executable, "-S", "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=180,
        # No .pyc written into the build: it is what `sam deploy` uploads, and what the size test measures.
        env={
            "PATH": os.environ.get("PATH", ""),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        },
        cwd=BUILD_DIR,
    )
    assert result.returncode == 0, f"{function}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def test_the_trimmed_litellm_streams_a_completion_with_tools_and_embeds(layers_dir: Path, fake_llm: FakeLLM) -> None:
    fake_llm.script("layer-smoke", [tool_calls([("call_1", "lookup", {"q": "x"})]), text("It works.")])
    script = """
        import litellm
        parameters = {"type": "object", "properties": {}}
        tools = [{"type": "function", "function": {"name": "lookup", "parameters": parameters}}]
        messages = [{"role": "user", "content": "hi"}]
        stream = litellm.completion(model="openai/layer-smoke", messages=messages, tools=tools, stream=True)
        calls = [c for chunk in stream for c in (chunk.choices[0].delta.tool_calls or [])]
        print("CALL", calls[0].function.name)
        answer = "".join(chunk.choices[0].delta.content or "" for chunk in litellm.completion(
            model="openai/layer-smoke", messages=messages, stream=True))
        print("TEXT", answer)
        from assistants_core.embeddings import embedder_for
        vectors = embedder_for("openai/text-embedding-3-small", 32).embed_documents(["a", "b"])
        print("EMBED", len(vectors), len(vectors[0]))
        import assistants_core.agent.step, app  # the agent step's handler, as Lambda imports it
        print("HANDLER", app.handler.__name__)
    """
    env = {"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    out = _run_with_layers("AgentStepFunction", script, env, layers_dir)
    assert "CALL lookup" in out and "TEXT It works." in out and "EMBED 2 32" in out and "HANDLER handler" in out


def test_the_ingest_layers_parse_and_chunk_documents(build_dir: Path, layers_dir: Path) -> None:
    from tests.harness.documents import make_docx, make_pdf

    samples = Path(build_dir).parent / "layer-smoke"
    samples.mkdir(exist_ok=True)
    (samples / "a.pdf").write_bytes(make_pdf([["The lighthouse opens at nine."]]))
    (samples / "b.docx").write_bytes(make_docx(["The ferry leaves at noon."]))
    script = f"""
        from pathlib import Path
        from assistants_core.ingest.extract import extract_text
        from assistants_core.ingest.chunking import chunk_text
        folder = Path({str(samples)!r})
        pdf = extract_text((folder / "a.pdf").read_bytes(), "a.pdf")
        docx = extract_text((folder / "b.docx").read_bytes(), "b.docx")
        print("PDF", pdf.strip())
        print("DOCX", docx.strip())
        print("CHUNKS", len(chunk_text("word " * 2000, max_tokens=800, overlap_tokens=400)))
        import app
        print("HANDLER", app.handler.__name__)
    """
    out = _run_with_layers("IngestFunction", script, {"AWS_DEFAULT_REGION": "us-east-1"}, layers_dir)
    assert "PDF The lighthouse opens at nine." in out
    assert "DOCX The ferry leaves at noon." in out
    # tiktoken's encoding, found offline in the layers, chunks as it does here.
    from assistants_core.ingest.chunking import chunk_text

    assert f"CHUNKS {len(chunk_text('word ' * 2000, max_tokens=800, overlap_tokens=400))}" in out
    assert "HANDLER handler" in out


@pytest.mark.parametrize(
    "function",
    [
        "AssistantsFunction",
        "ModelsFunction",
        "ThreadsFunction",
        "MessagesFunction",
        "FilesFunction",
        "VectorStoresFunction",
        "RunsFunction",
    ],
)
def test_each_api_function_imports_its_app_from_its_layers(layers_dir: Path, function: str) -> None:
    out = _run_with_layers(
        function, "import app; print('APP', type(app.app).__name__)", {"AWS_DEFAULT_REGION": "us-east-1"}, layers_dir
    )
    assert "APP FastAPI" in out
