"""How long and how much a stream keeps: durations and sizes as settings write them, and bounds.

Settings and broker options spell retention the way operators do (``7d``, ``12h``, ``10G``); the
streams take seconds and bytes. :func:`parse_duration` and :func:`parse_size` turn the one into the
other and raise ``ValueError`` for anything else (the caller names the setting);
:func:`format_duration` and :func:`format_size` turn them back for log lines.

:class:`Limits` is one stream's bound. Every stream and bucket the project creates has one: an
age, a byte cap, or both (see the retention table in docs/operations.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

from tables.errors import ConfigError

__all__ = [
    "DAY",
    "GIB",
    "Limits",
    "MIB",
    "UNLIMITED",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

DAY: Final = 86400.0
MIB: Final = 1 << 20
GIB: Final = 1 << 30
#: JetStream's "no limit" for ``max_bytes``
UNLIMITED: Final = -1

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms]?)", re.ASCII | re.IGNORECASE)
_DURATION_UNITS: Final = {"d": DAY, "h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
# Powers of 1024, as nats-server reads sizes in its own configuration ("1GB" is 1024^3 there);
# K, KB and KiB all mean the same so that no spelling silently means something 2.4 % off.
_SIZE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?", re.ASCII | re.IGNORECASE)
_SIZE_UNITS: Final = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, None: 1}


def parse_duration(raw: str) -> float:
    """Seconds from ``"90d"``, ``"12h"``, ``"30m"``, ``"45s"`` or plain seconds (``"3600"``, ``"1.5"``)."""
    match = _DURATION.fullmatch(raw.strip())
    if match is None:
        raise ValueError(f"not a duration: {raw!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_size(raw: str) -> int:
    """Bytes from ``"-1"`` (no limit), plain bytes or ``K``/``M``/``G``/``T`` (powers of 1024)."""
    text = raw.strip()
    if text == str(UNLIMITED):
        return UNLIMITED
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {raw!r}")
    unit = match.group(2).lower() if match.group(2) else None
    value = float(match.group(1)) * _SIZE_UNITS[unit]
    if value != int(value):
        raise ValueError(f"not a whole number of bytes: {raw!r}")
    return int(value)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: ``7d``, ``36h``, ``90m``, ``1.5s``; ``0`` is ``unlimited``."""
    if seconds <= 0:
        return "unlimited"
    for suffix in ("d", "h", "m"):
        count = seconds / _DURATION_UNITS[suffix]
        if count >= 1 and count == int(count):
            return f"{int(count)}{suffix}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """``-1`` is ``unlimited``; whole KiB, MiB, GiB and TiB are spelled with their unit."""
    if size < 0:
        return "unlimited"
    for unit, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {suffix}"
    return f"{size} B"


@dataclass(frozen=True)
class Limits:
    """One stream's bound: messages older than ``max_age`` seconds go, and at most ``max_bytes``.

    ``max_age`` 0 means no age limit and ``max_bytes`` -1 no byte limit, as in JetStream; one of
    the two must be set, so that nothing is kept forever without bound.
    """

    max_age: float
    max_bytes: int = UNLIMITED

    def __post_init__(self) -> None:
        if not math.isfinite(self.max_age) or self.max_age < 0:
            raise ConfigError("max_age", self.max_age, "must be a finite number of seconds >= 0", kind="Limit")
        if self.max_bytes != UNLIMITED and self.max_bytes < 1:
            raise ConfigError("max_bytes", self.max_bytes, "must be -1 (no byte limit) or >= 1", kind="Limit")
        if self.max_age == 0 and self.max_bytes == UNLIMITED:
            raise ConfigError(
                "max_age", self.max_age, "a stream needs a bound: an age, a byte cap or both", kind="Limit"
            )
