"""Object ids and timestamps.

Ids look like OpenAI's (``asst_`` + 24 characters) but sort by creation time: the first
8 characters encode milliseconds in base62 (an alphabet in ASCII order) and the rest is random,
incremented when two ids share a millisecond. Sorting the DynamoDB sort key by id therefore
sorts by creation, which is what list ``order`` and the ``after``/``before`` cursors need.
"""

from __future__ import annotations

import secrets
import threading
import time

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TIME_CHARS = 8
_RANDOM_CHARS = 16
_RANDOM_SPACE = 62**_RANDOM_CHARS

_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str, separator: str = "_") -> str:
    """``prefix`` + ``separator`` + 24 characters (OpenAI's file ids use ``file-``)."""
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_random += 1 + secrets.randbelow(1 << 16)
        else:
            _last_random = secrets.randbelow(_RANDOM_SPACE // 2)
        _last_ms = now_ms
        random_part = _encode(_last_random % _RANDOM_SPACE, _RANDOM_CHARS)
        return f"{prefix}{separator}{_encode(now_ms, _TIME_CHARS)}{random_part}"


def now() -> int:
    """Unix time in seconds, as every ``*_at`` field of the API."""
    return int(time.time())
