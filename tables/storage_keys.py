"""Storage keys: the names under which one metric's states go to the changelog.

Format, for metric ``<metric>`` (the caller adds any partition or table prefix it needs)::

    <metric>.watermark                               the partition's watermark
    <metric>.window.<start_us>.<part_1>...<part_n>   one window of one key

``start_us`` is the window's start in epoch microseconds (an int, ``-`` before 1970) and the parts
are the key's values in ``key_fields`` order, e.g. ``answers.window.1714557600000000.s42.g7``.

Every character is from ``[A-Za-z0-9_=-]`` plus the ``.`` separators, so a storage key is also a
valid NATS KV key and subject: a key part keeps letters, digits, ``_`` and ``-`` and writes every
other UTF-8 byte as ``=XX`` (upper-case hex), e.g. ``"ann@x.org"`` -> ``ann=40x=2Eorg``. The
encoding is reversible, which is how ``load`` gets the key back from the storage key alone.
Metric names are restricted to the safe characters (see ``MetricDefinition``), and key parts are
never empty, so no token is empty.
"""

from __future__ import annotations

import re
from typing import Final

from tables.errors import StateError

__all__ = ["SAFE_NAME", "parse_window_key", "watermark_key", "window_key"]

#: What a metric name (and an unescaped key part) may consist of.
SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPE: Final = re.compile(rb"=([0-9A-F]{2})")
_ENCODED: Final = re.compile(r"(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+")
_START: Final = re.compile(r"-?[0-9]+")
_SAFE_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def watermark_key(metric: str) -> str:
    """The storage key of ``metric``'s watermark."""
    return f"{metric}.watermark"


def window_key(metric: str, key: tuple[str, ...], start_us: int) -> str:
    """The storage key of ``metric``'s window starting at ``start_us`` for ``key``."""
    return ".".join((metric, "window", str(start_us), *map(_encode, key)))


def parse_window_key(metric: str, storage_key: str, parts: int) -> tuple[tuple[str, ...], int]:
    """``(key, start_us)`` from a window storage key of ``metric`` with ``parts`` key parts.

    Raises :class:`StateError` for a key this metric did not write.
    """
    tokens = storage_key.split(".")
    if len(tokens) != 3 + parts or tokens[0] != metric or tokens[1] != "window":
        expected = ".".join((metric, "window", "<start_us>", *["<part>"] * parts))
        raise StateError(
            storage_key, f"not a storage key of this metric (expected {expected} or {metric}.watermark)"
        )
    start = tokens[2]
    if _START.fullmatch(start) is None:
        raise StateError(storage_key, f"window start {start!r} is not an integer number of microseconds")
    return tuple(_decode(storage_key, token) for token in tokens[3:]), int(start)


def _encode(part: str) -> str:
    if SAFE_NAME.fullmatch(part):
        return part
    return "".join(chr(byte) if byte in _SAFE_BYTES else f"={byte:02X}" for byte in part.encode())


def _decode(storage_key: str, token: str) -> str:
    if _ENCODED.fullmatch(token) is None:
        raise StateError(storage_key, f"key part {token!r} is not a valid encoded part")
    raw = _ESCAPE.sub(lambda match: bytes([int(match[1], 16)]), token.encode("ascii"))
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise StateError(storage_key, f"key part {token!r} does not decode to UTF-8 text") from None
