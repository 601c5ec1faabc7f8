"""Token chunking as OpenAI's file_search does it: fixed windows of tokens that overlap.

OpenAI's ``static`` strategy takes ``max_chunk_size_tokens`` (100-4,096) and
``chunk_overlap_tokens`` (at most half of it); ``auto`` is 800 and 400. A window holds at most
``max_tokens`` tokens and the next one starts ``max_tokens - overlap_tokens`` tokens later, until
a window reaches the end of the text.

Token windows are cut on character boundaries: a CJK character or an emoji can span several
tokens, and decoding half of one would put U+FFFD into the chunk. So a window's start moves
forward and its end moves back to the nearest boundary (a few tokens at most). The result depends
only on the text and the two sizes, so an ingestion retry produces the same chunks (and keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from .. import tokens
from ..types.vector_store import AUTO_CHUNK_TOKENS, AUTO_OVERLAP_TOKENS, MAX_CHUNK_TOKENS, MIN_CHUNK_TOKENS

# The encoding of OpenAI's current models; litellm ships its file, so it loads offline.
CHUNK_ENCODING = "o200k_base"


@dataclass(frozen=True)
class Chunk:
    """One window of a file's text: ``index`` counts from 0, ``tokens`` is its text's own count."""

    text: str
    index: int
    tokens: int


def validate_sizes(max_tokens: int, overlap_tokens: int) -> None:
    """Raise ValueError for sizes OpenAI's static chunking strategy would reject."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise ValueError("max_tokens must be an integer")
    if isinstance(overlap_tokens, bool) or not isinstance(overlap_tokens, int):
        raise ValueError("overlap_tokens must be an integer")
    if not MIN_CHUNK_TOKENS <= max_tokens <= MAX_CHUNK_TOKENS:
        raise ValueError(f"max_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, got {max_tokens}")
    if overlap_tokens < 0:
        raise ValueError(f"overlap_tokens must not be negative, got {overlap_tokens}")
    if overlap_tokens * 2 > max_tokens:
        raise ValueError(f"overlap_tokens must not exceed half of max_tokens ({max_tokens}), got {overlap_tokens}")


def chunk_text(
    text: str, max_tokens: int = AUTO_CHUNK_TOKENS, overlap_tokens: int = AUTO_OVERLAP_TOKENS
) -> list[Chunk]:
    """Split ``text`` into overlapping windows of at most ``max_tokens`` tokens.

    Every chunk's text, encoded on its own, is at most ``max_tokens`` tokens (``Chunk.tokens``).
    Chunks that would hold only whitespace are left out; ``index`` stays consecutive.
    Special-token markers in the text (``<|endoftext|>``) are ordinary text.
    """
    validate_sizes(max_tokens, overlap_tokens)
    encoding = tokens.encoding(CHUNK_ENCODING)
    ids = encoding.encode_ordinary(text)
    n = len(ids)
    if n == 0:
        return []
    pieces = encoding.decode_tokens_bytes(ids)
    data = b"".join(pieces)
    offsets = [0, *accumulate(len(p) for p in pieces)]  # byte offset where token i starts

    def on_boundary(i: int) -> bool:
        # A token boundary is a character boundary unless the next byte continues a UTF-8 sequence.
        return i >= n or not 0x80 <= data[offsets[i]] <= 0xBF

    step = max_tokens - overlap_tokens
    chunks: list[Chunk] = []
    start = 0
    while True:
        first = start
        while not on_boundary(first):
            first += 1
        end = min(start + max_tokens, n)
        while not on_boundary(end):
            end -= 1
        while True:
            piece = data[offsets[first] : offsets[end]].decode("utf-8", errors="replace")
            count = len(encoding.encode_ordinary(piece))
            # Re-encoded alone, a window can come out a token or two longer: trim it until it fits.
            if count <= max_tokens or end - 1 <= first:
                break
            end -= 1
            while not on_boundary(end):
                end -= 1
        if piece.strip():
            chunks.append(Chunk(text=piece, index=len(chunks), tokens=count))
        if end >= n:
            return chunks
        # Never skip text: if trimming pulled the end back past the next start, start there.
        start = max(start + 1, min(start + step, end))


def within_bytes(chunks: list[Chunk], max_bytes: int) -> list[Chunk]:
    """The chunks with any whose text is over ``max_bytes`` of UTF-8 cut into pieces that fit,
    on character boundaries, renumbered. A token can be up to 128 bytes (a run of '=' or of
    spaces), so a window of tokens can hold far more text than its count suggests, and a
    chunk's text must fit the index's metadata."""
    encoding = tokens.encoding(CHUNK_ENCODING)
    fitted: list[Chunk] = []
    for chunk in chunks:
        data = chunk.text.encode()
        if len(data) <= max_bytes:
            fitted.append(Chunk(text=chunk.text, index=len(fitted), tokens=chunk.tokens))
            continue
        start = 0
        while start < len(data):
            end = min(start + max_bytes, len(data))
            while end < len(data) and 0x80 <= data[end] <= 0xBF:  # not inside a UTF-8 sequence
                end -= 1
            piece = data[start:end].decode()
            if piece.strip():
                fitted.append(Chunk(text=piece, index=len(fitted), tokens=len(encoding.encode_ordinary(piece))))
            start = end
    return fitted
