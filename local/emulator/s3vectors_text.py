"""Full-text search for the S3 Vectors emulator: text analyzers and a cached BM25 index per key.

AWS indexes each metadata key listed in ``textSearchConfigurations`` with a text analyzer (the
standard one, or the configured language's) and ranks with BM25. Here the analyzers approximate
Lucene's: the standard one lowercases and splits on Unicode word boundaries, with each Han or
Hiragana character a token of its own; a language adds its stop words (from bm25s), English a
minimal plural stemmer, and Chinese, Japanese and Korean overlapping bigrams (as Lucene's CJK
analyzer). Scores are Lucene's BM25 (k1 = 1.2, b = 0.75) computed by ``bm25s``; as in Lucene,
only vectors that have the key count towards document frequencies and average length.

The index covers every stored vector, including those written before the key was configured
(AWS backfills them), and is rebuilt lazily after writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .s3vectors_store import IndexState, Matrix

K1, B = 1.2, 0.75
_CJK = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Hiragana and Han
_CJK_RUN = re.compile(f"[{_CJK}\u30a0-\u30ff\uac00-\ud7af]+")
_STANDARD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*")
_STOPWORDS = {
    "en": "STOPWORDS_EN",
    "fr": "STOPWORDS_FRENCH",
    "es": "STOPWORDS_SPANISH",
    "pt": "STOPWORDS_PORTUGUESE",
    "it": "STOPWORDS_ITALIAN",
    "de": "STOPWORDS_GERMAN",
    "nl": "STOPWORDS_DUTCH",
    "zh": "STOPWORDS_CHINESE",
    "ko": "STOPWORDS_KOREAN",
}


@cache
def _stopwords(language: str | None) -> frozenset[str]:
    if language not in _STOPWORDS:
        return frozenset()
    from bm25s import stopwords

    return frozenset(getattr(stopwords, _STOPWORDS[language]))


def analyze(text: str, language: str | None) -> list[str]:
    """The terms a field's analyzer makes of ``text`` (the same for documents and queries)."""
    text = text.lower()
    if language in ("zh", "ja", "ko"):
        tokens = []
        for piece in re.split(f"({_CJK_RUN.pattern})", text):
            if _CJK_RUN.fullmatch(piece):
                tokens.extend([piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)])
            else:
                tokens.extend(_STANDARD.findall(piece))
    else:
        tokens = _STANDARD.findall(text)
    stop = _stopwords(language)
    if language == "en":
        return [_english_stem(t) for t in tokens if t not in stop]
    return [t for t in tokens if t not in stop]


def _english_stem(token: str) -> str:
    """Lucene's EnglishPossessiveFilter and EnglishMinimalStemmer (plurals only)."""
    if token.endswith(("'s", "’s")):
        token = token[:-2]
    if len(token) < 3 or token[-1] != "s" or token[-2] in "us":
        return token
    if token[-2] == "e":
        if len(token) > 3 and token[-3] == "i" and token[-4] not in "ae":
            return token[:-3] + "y"
        if token[-3] in "iaoe":
            return token
    return token[:-1]


def field_text(value: Any) -> str | None:
    """A metadata value as the text the analyzer sees; lists are concatenated (multi-valued field)."""
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(t for t in (field_text(v) for v in value) if t)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class TextIndex:
    """BM25 over one metadata key: ``rows`` are the matrix rows of the vectors that have the key."""

    rows: np.ndarray
    size: int
    language: str | None
    retriever: Any

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every matrix row for ``text`` (0 where a row lacks the key or the terms)."""
        out = np.zeros(self.size, dtype=np.float64)
        terms = analyze(text, self.language)
        if self.retriever is None or not terms:
            return out
        ids = self.retriever.get_tokens_ids(terms)
        if ids:
            out[self.rows] = self.retriever.get_scores_from_ids(ids)
        return out


def text_index(state: IndexState, metadata_key: str) -> TextIndex:
    """The BM25 index of ``metadata_key`` over the index's current vectors, built once per write."""
    language = state.text_search[metadata_key].language
    return state.cached(("bm25", metadata_key, language), lambda: _build(state.matrix(), metadata_key, language))


def _build(matrix: Matrix, metadata_key: str, language: str | None) -> TextIndex:
    rows: list[int] = []
    corpus: list[list[str]] = []
    for row, record in enumerate(matrix.records):
        terms = record.terms.get((metadata_key, language))
        if terms is None:
            text = field_text(record.metadata.get(metadata_key))
            if text is None:
                continue
            terms = record.terms[(metadata_key, language)] = analyze(text, language)
        rows.append(row)
        corpus.append(terms)
    retriever = None
    if rows:
        import bm25s

        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index(corpus, show_progress=False)
    return TextIndex(np.asarray(rows, dtype=np.int64), len(matrix.records), language, retriever)
