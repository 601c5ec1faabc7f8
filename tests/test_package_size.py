"""What `sam build` made (`make test` builds first): every function fits Lambda's 250 MB with its
layers, and the layers, trimmed to fit, still do what their functions need.

Each check runs the built layers in a fresh interpreter without site-packages (`python -S`), the
layers on the path in Lambda's order, so nothing of the development virtualenv can stand in
for a file the trimming removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from local.template import load_template
from tests.harness.fake_llm import FakeLLM, text, tool_calls
from tests.package_size import BUILD_DIR, LAMBDA_UNZIPPED_LIMIT, MIB, function_layers, layer_name, sizes

pytestmark = pytest.mark.slow


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


def _run_with_layers(function: str, script: str, env: dict[str, str] | None = None) -> str:
    """Run ``script`` as the function would import it: its code, then its layers (a later layer
    first, as a later layer's files win in /opt/python), and the standard library only."""
    layers = [layer_name(layer) for layer in function_layers(function)]
    paths = [str(BUILD_DIR / function)] + [str(BUILD_DIR / name / "python") for name in reversed(layers)]
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


def test_the_trimmed_litellm_streams_a_completion_with_tools_and_embeds(build_dir: Path, fake_llm: FakeLLM) -> None:
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
    out = _run_with_layers("AgentStepFunction", script, env)
    assert "CALL lookup" in out and "TEXT It works." in out and "EMBED 2 32" in out and "HANDLER handler" in out


def test_the_ingest_layers_parse_and_chunk_documents(build_dir: Path) -> None:
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
    out = _run_with_layers("IngestFunction", script, {"AWS_DEFAULT_REGION": "us-east-1"})
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
def test_each_api_function_imports_its_app_from_its_layers(build_dir: Path, function: str) -> None:
    out = _run_with_layers(
        function, "import app; print('APP', type(app.app).__name__)", {"AWS_DEFAULT_REGION": "us-east-1"}
    )
    assert "APP FastAPI" in out
