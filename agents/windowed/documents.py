"""What a windowed metric writes about a window: its public JSON, its address, its failure.

A closed window's final result and an open window's current value are one document, told apart
by ``"final"`` (``contract.results``, docs/api.md); a window whose result cannot be computed is
dead-lettered with its key, window and error instead. Times are RFC 3339 in UTC, and every
document is strict JSON: a value that is not finite raises rather than being written as ``NaN``,
which strict parsers refuse.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from contract.names import is_id, metrics_key_prefix, result_subject, window_key_of
from tables import ClosedWindow, FailedWindow, OpenWindowResult
from tables.compact_json import compact_encoder

__all__ = ["failed_document", "result_address", "result_document", "rfc3339", "strict_json"]


def result_document(window: ClosedWindow | OpenWindowResult, version: int = 1) -> dict[str, Any]:
    """The public JSON of a window (see ``contract.results`` and docs/api.md).

    ``"final": true`` for a closed window; an open window's current values say ``false``. The
    metric's ``version`` is said from version 2 on (a document without one is version 1's).
    """
    return {
        "metric": window.metric,
        **_version_field(version),
        "key": dict(window.key),
        "window": {"start": rfc3339(window.start), "end": rfc3339(window.end)},
        "final": isinstance(window, ClosedWindow),
        "events": window.events,
        "values": window.values,
    }


def failed_document(failed: FailedWindow, version: int = 1) -> dict[str, Any]:
    """The dead letter of a window whose result could not be computed: key, window and error."""
    return {
        "metric": failed.metric,
        **_version_field(version),
        "key": failed.key,
        "window": {"start": rfc3339(failed.start), "end": rfc3339(failed.end)},
        "events": failed.events,
        "error": failed.error,
    }


def _version_field(version: int) -> dict[str, int]:
    # Left out for version 1, whose documents were written before versions were: they stay as
    # every deployed reader knows them.
    return {} if version == 1 else {"version": version}


def result_address(window: ClosedWindow | OpenWindowResult, series: str | None = None) -> tuple[str, str] | None:
    """The window's KV key and result subject under ``series`` (the metric's version's token;
    default: its name, version 1's); None when a key part could not name a key."""
    parts = tuple(window.key.values())
    if not all(type(part) is str for part in parts):
        return None
    of_key = _key_address(window.metric if series is None else series, parts)
    if of_key is None:
        return None
    prefix, subject = of_key
    return window_key_of(prefix, int(window.start)), subject


# Remembered per key: a key's windows close one after another (one per window length), and
# checking its parts with the id rule, three times over, was half the cost of an address. Bounded:
# beyond that many keys closing in turn it only costs what it saves.
@functools.lru_cache(maxsize=16_384)
def _key_address(series: str, parts: tuple[str, ...]) -> tuple[str, str] | None:
    """The KV key prefix and result subject of every window of a key; None as above."""
    if not all(is_id(part) for part in parts):
        return None
    return metrics_key_prefix(series, parts), result_subject(series, parts[0])


_strict_encode = compact_encoder(allow_nan=False)


def strict_json(document: Any) -> bytes:
    """Compact JSON that strict parsers read: NaN and Infinity raise instead of being written."""
    return _strict_encode(document).encode()


# Remembered: every window of a metric that closes at one time has the same bounds, so one
# formatting serves each key's result (strftime is most of a result document's cost otherwise).
@functools.lru_cache(maxsize=1024)
def rfc3339(epoch: float) -> str:
    """``epoch`` seconds as RFC 3339 in UTC, with microseconds only when there are any."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
