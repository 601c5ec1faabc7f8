"""Token chunking (OpenAI's static strategy) and the offline tiktoken encodings it relies on."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from assistants_core import tokens
from assistants_core.agent import conversation
from assistants_core.ingest.chunking import CHUNK_ENCODING, Chunk, chunk_text

ENCODING = tokens.encoding(CHUNK_ENCODING)
REPO = Path(__file__).resolve().parents[1]


def n_tokens(text: str) -> int:
    return len(ENCODING.encode_ordinary(text))


def hellos(count: int) -> str:
    """Text of exactly ``count`` tokens: "hello" then " hello"s (one token each)."""
    return "hello" + " hello" * (count - 1)


def prose(words: int, seed: int = 7) -> str:
    """Varied English-like text with line breaks and punctuation, the same for the same seed."""
    rng = random.Random(seed)
    vocabulary = [
        "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at",
        "from", "vector", "store", "file", "search", "chunk", "token", "overlap", "window", "assistant",
        "thread", "message", "run", "model", "embedding", "index", "query", "result", "score", "Lambda",
        "DynamoDB", "S3", "retrieval", "document", "paragraph", "sentence", "2024", "42", "3.14",
        "(note)", "e.g.", "well-known",
    ]  # fmt: skip
    out: list[str] = []
    for i in range(words):
        out.append(rng.choice(vocabulary))
        if i % 17 == 16:
            out.append(".\n" if i % 3 else ".\n\n")
    return " ".join(out)


def reassemble(chunks: list[Chunk]) -> str:
    """The text the chunks cover, merging each chunk into the previous one at their overlap."""
    out = chunks[0].text
    for previous, current in zip(chunks, chunks[1:], strict=False):
        for shift in range(1, len(previous.text) + 1):
            shared = len(previous.text) - shift
            if previous.text[shift:] == current.text[:shared]:
                out += current.text[shared:]
                break
    return out


# --- bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"),
    [(99, 0), (4097, 0), (0, 0), (-800, 0), (800, 401), (800, -1), (101, 51), (4096, 2049), (True, 0), (800.0, 400)],
)
def test_bounds_are_validated(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("some text", max_tokens, overlap_tokens)


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(100, 0), (100, 50), (101, 50), (4096, 2048), (800, 400)])
def test_bounds_accepted(max_tokens: int, overlap_tokens: int) -> None:
    assert [c.text for c in chunk_text("some text", max_tokens, overlap_tokens)] == ["some text"]


def test_bounds_are_checked_even_for_empty_text() -> None:
    with pytest.raises(ValueError):
        chunk_text("", 50, 0)


# --- sizes and counts for known inputs ----------------------------------------------------


def test_empty_and_whitespace_text_give_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\n\t ") == []


def test_defaults_are_openai_auto() -> None:
    text = hellos(2000)
    assert chunk_text(text) == chunk_text(text, 800, 400)


@pytest.mark.parametrize(
    ("total", "max_tokens", "overlap_tokens", "expected"),
    [
        (1, 800, 400, [1]),
        (800, 800, 400, [800]),
        (801, 800, 400, [800, 401]),
        (1200, 800, 400, [800, 800]),
        (1201, 800, 400, [800, 800, 401]),
        (2000, 800, 400, [800, 800, 800, 800]),
        (1000, 100, 0, [100] * 10),
        (1001, 100, 0, [100] * 10 + [1]),
        (300, 100, 50, [100, 100, 100, 100, 100]),
        (5000, 4096, 2048, [4096, 4096 - 2048 + (5000 - 4096)]),
    ],
)
def test_windows_for_known_token_counts(total: int, max_tokens: int, overlap_tokens: int, expected: list[int]) -> None:
    text = hellos(total)
    assert n_tokens(text) == total
    chunks = chunk_text(text, max_tokens, overlap_tokens)
    assert [c.tokens for c in chunks] == expected
    assert [c.index for c in chunks] == list(range(len(expected)))
    assert [n_tokens(c.text) for c in chunks] == expected


def test_window_starts_advance_by_max_minus_overlap() -> None:
    # Numbered words: where a chunk's text sits in the text tells where its window starts.
    text = "".join(f" w{i}" for i in range(3000))
    total = n_tokens(text)
    chunks = chunk_text(text, 500, 200)
    starts = [n_tokens(text[: text.index(c.text)]) for c in chunks]
    assert starts == list(range(0, total - 200, 300))  # a window exists while the last one fell short
    assert all(c.tokens == 500 for c in chunks[:-1]) and chunks[-1].text.endswith(" w2999")
    assert chunks[-1].tokens == total - starts[-1]


def test_window_that_grows_when_re_encoded_is_trimmed() -> None:
    # Tokens 99.. are "😀", "😀", "ภาษา", "ไทย": alone, "😀ภาษาไทย" takes 5 tokens, not 3, so
    # the second 100-token window, decoded and encoded again, would be 102 tokens.
    text = "hello" + " hello" * 97 + "\n" + "😀😀ภาษาไทย" + " hello" * 120
    ids = ENCODING.encode_ordinary(text)
    assert n_tokens(ENCODING.decode(ids[100:200])) == 102
    chunks = chunk_text(text, 100, 0)
    assert [c.tokens for c in chunks] == [100, 100, 25]
    assert chunks[1].text.startswith("😀ภาษาไทย") and n_tokens(chunks[1].text) == 100
    assert "".join(c.text for c in chunks) == text  # no overlap, no gap


def test_prose_chunks_fit_overlap_and_cover_the_text() -> None:
    text = prose(6000)
    for max_tokens, overlap_tokens in [(800, 400), (100, 50), (300, 0), (1000, 123)]:
        chunks = chunk_text(text, max_tokens, overlap_tokens)
        assert len(chunks) > 3
        assert all(0 < c.tokens <= max_tokens and c.tokens == n_tokens(c.text) for c in chunks)
        assert all(c.tokens >= max_tokens - 3 for c in chunks[:-1])  # windows are full, save the last
        assert reassemble(chunks) == text
        for previous, current in zip(chunks, chunks[1:], strict=False):
            shared = next(
                len(previous.text) - s
                for s in range(1, len(previous.text) + 1)
                if previous.text[s:] == current.text[: len(previous.text) - s]
            )
            assert abs(n_tokens(current.text[:shared]) - overlap_tokens) <= 3


def test_special_token_markers_are_plain_text() -> None:
    text = "before <|endoftext|> after <|fim_prefix|>"
    [chunk] = chunk_text(text, 100, 0)
    assert chunk.text == text and chunk.tokens == n_tokens(text) > 2


# --- multi-byte text ----------------------------------------------------------------------

# Numbered, so that no stretch repeats and each chunk has one place in the text.
MULTIBYTE = "".join(
    f"{i}番: 日本語のテキストを分割します。👨‍👩‍👧 家族と🇯🇵旗、😀😃😄、𝔘𝔫𝔦𝔠𝔬𝔡𝔢、한국어 텍스트, ภาษาไทย, émoji café. "
    for i in range(120)
)


def test_multibyte_fixture_really_splits_characters_between_tokens() -> None:
    # Without boundary care, some 100-token windows would decode to broken characters.
    ids = ENCODING.encode_ordinary(MULTIBYTE)
    broken = [s for s in range(0, len(ids), 50) if "\ufffd" in ENCODING.decode(ids[s : s + 100])]
    assert broken


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(100, 50), (100, 0), (137, 41), (800, 400)])
def test_multibyte_chunks_have_whole_characters(max_tokens: int, overlap_tokens: int) -> None:
    chunks = chunk_text(MULTIBYTE, max_tokens, overlap_tokens)
    assert len(chunks) > 2
    for chunk in chunks:
        assert "\ufffd" not in chunk.text
        assert chunk.text in MULTIBYTE  # a real slice of the text
        assert chunk.text.encode("utf-8").decode("utf-8") == chunk.text
        assert 0 < chunk.tokens <= max_tokens and chunk.tokens == n_tokens(chunk.text)
    assert reassemble(chunks) == MULTIBYTE


def test_random_text_never_exceeds_max_tokens() -> None:
    rng = random.Random(11)
    pieces = ["hello", " world", "日本語", "😀", "👨‍👩‍👧", "\n\n", "   ", "x" * 40, "1234567", "ภาษาไทย", "ㅋㅋ", "é"]
    for _ in range(40):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 1500)))
        max_tokens = rng.choice([100, 101, 160, 512])
        overlap_tokens = rng.randint(0, max_tokens // 2)
        chunks = chunk_text(text, max_tokens, overlap_tokens)
        assert all(c.tokens <= max_tokens and c.tokens == n_tokens(c.text) for c in chunks)
        assert all("\ufffd" not in c.text and c.text in text for c in chunks)
        if text.strip():
            assert text.startswith(chunks[0].text) and text.endswith(chunks[-1].text)


# --- determinism --------------------------------------------------------------------------


def test_same_text_same_chunks() -> None:
    text = prose(3000, seed=3) + MULTIBYTE
    assert chunk_text(text, 400, 100) == chunk_text(text, 400, 100)


def test_same_chunks_in_a_fresh_process() -> None:
    # Retries run in another Lambda: nothing may depend on process state (hash seeds, caches).
    code = (
        "from assistants_core.ingest.chunking import chunk_text\n"
        "import hashlib, sys\n"
        "text = sys.stdin.read()\n"
        "print(hashlib.sha256(repr([(c.text, c.index, c.tokens) for c in chunk_text(text, 300, 120)]).encode())"
        ".hexdigest())\n"
    )
    text = prose(2500, seed=5) + MULTIBYTE
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO / "layers/core/python")},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = hashlib.sha256(repr([(c.text, c.index, c.tokens) for c in chunk_text(text, 300, 120)]).encode())
    assert digests == {here.hexdigest()}


def test_chunk_is_frozen() -> None:
    chunk = chunk_text("hello", 100, 0)[0]
    assert chunk == Chunk(text="hello", index=0, tokens=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.text = "other"  # type: ignore[misc]


# --- the shared tokenizer module ----------------------------------------------------------


def test_chunks_use_o200k() -> None:
    assert CHUNK_ENCODING == "o200k_base" and ENCODING.name == "o200k_base"


@pytest.mark.parametrize(
    ("name_or_model", "expected"),
    [
        ("o200k_base", "o200k_base"),
        ("cl100k_base", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("bedrock/anthropic.claude-3-haiku", "cl100k_base"),  # unknown model
        ("davinci", "cl100k_base"),  # r50k_base is not shipped: no download
        ("r50k_base", "cl100k_base"),
        ("gpt2", "cl100k_base"),
    ],
)
def test_encoding_names(name_or_model: str, expected: str) -> None:
    assert tokens.encoding_name(name_or_model) == expected
    assert tokens.encoding(name_or_model).name == expected


def test_encodings_load_offline_from_litellm_files(tmp_path: Path) -> None:
    # A fresh process whose download function fails and whose temp dir is empty (tiktoken's
    # default cache): the encodings must come from litellm's bundled files.
    code = (
        "import os, tiktoken.load as load\n"
        "def no_download(path):\n"
        "    raise RuntimeError('tried to download ' + path)\n"
        "load.read_file = no_download\n"
        "from assistants_core import tokens\n"
        "tokens.warm_up()\n"
        "print(tokens.count('o200k_base', 'hello world'), tokens.encoding('p50k_base').name)\n"
        "print(os.environ['TIKTOKEN_CACHE_DIR'])\n"
        "import sys; print('litellm' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "CUSTOM_TIKTOKEN_CACHE_DIR")}
    env.update(TMPDIR=str(tmp_path), PYTHONPATH=str(REPO / "layers/core/python"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    counted, folder, imported = result.stdout.splitlines()
    assert counted == "2 p50k_base"
    assert folder.endswith(os.path.join("litellm", "litellm_core_utils", "tokenizers"))
    assert imported == "False"  # found without importing litellm (slow, and it may go online)


def test_count_treats_special_tokens_as_text() -> None:
    assert tokens.count("gpt-4o", "a <|endoftext|> b") == n_tokens("a <|endoftext|> b")


def test_conversation_counting_still_works() -> None:
    assert tokens.count("gpt-4o", "hello world") == 2
    assert tokens.count("gpt-4", "a <|endoftext|> b") > 3  # once a ValueError
    messages = [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": None}]
    assert conversation.count_tokens("gpt-4o", messages) == 3 + 3 + 2 + 3
    quoting = [{"role": "user", "content": "a <|endoftext|> b"}]
    assert conversation.count_tokens("gpt-4", quoting) == 3 + 3 + tokens.count("gpt-4", "a <|endoftext|> b")


def test_chunks_over_the_byte_budget_are_cut_on_character_boundaries() -> None:
    from assistants_core.ingest.chunking import within_bytes

    # A token can stand for a long run of one character: 800 tokens of dashes are ~48 KB of text,
    # more than a vector's metadata may hold.
    dashes = ("-" * 120 + "\n") * 3000
    chunks = chunk_text(dashes)
    assert max(len(c.text.encode()) for c in chunks) > 40_000
    fitted = within_bytes(chunks, 32_000)
    assert all(len(c.text.encode()) <= 32_000 for c in fitted)
    assert [c.index for c in fitted] == list(range(len(fitted)))
    assert len(fitted) > len(chunks)
    # Every byte of each oversized chunk is kept, in order, and a multi-byte character is never cut.
    accents = "é" * 40_000
    pieces = within_bytes(chunk_text(accents, 4096, 0), 10_001)
    assert "".join(p.text for p in pieces) == "".join(c.text for c in chunk_text(accents, 4096, 0))
    assert all("\ufffd" not in p.text and len(p.text.encode()) <= 10_001 for p in pieces)
    # Chunks that fit are untouched.
    small = chunk_text("word " * 2000)
    assert within_bytes(small, 32_000) == small
