"""The demo's status line: events sent per second, windows closed, late and invalid events.

Windows closed is the number of messages in the results stream (one per window that closed);
late and invalid events are counted in the dead-letter stream by subject
(``deadletter.late.<metric>``; ``deadletter.invalid`` from NATS ingest and
``deadletter.invalid.<metric>`` from the workers). Counts are shown for this run: the streams
outlive it in the data directory, so what they held at start is subtracted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridges.public.streams import PublicStreams
from contract.names import DEADLETTER_INVALID, DEADLETTER_LATE

if TYPE_CHECKING:  # for annotations only: at run time only bridges imports nats
    from nats.aio.client import Client

__all__ = ["Counts", "StreamCounts", "count_letters", "parse_report", "status_line"]


@dataclass(frozen=True, slots=True)
class Counts:
    windows: int = 0
    late: int = 0
    invalid: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.windows - other.windows, self.late - other.late, self.invalid - other.invalid)


def count_letters(subjects: dict[str, int]) -> tuple[int, int]:
    """``(late, invalid)`` from the dead-letter stream's per-subject message counts."""
    late = sum(n for subject, n in subjects.items() if subject.startswith(f"{DEADLETTER_LATE}."))
    invalid = sum(
        n for subject, n in subjects.items()
        if subject == DEADLETTER_INVALID or subject.startswith(f"{DEADLETTER_INVALID}.")
    )
    return late, invalid


class StreamCounts:
    """Reads the counts from the results and dead-letter streams (created if missing)."""

    def __init__(self, client: Client, streams: PublicStreams) -> None:
        self._client = client
        self._streams = streams

    async def read(self) -> Counts:
        windows, subjects = await self._streams.counts(self._client.jetstream())
        late, invalid = count_letters(subjects)
        return Counts(windows=windows, late=late, invalid=invalid)


def parse_report(line: str) -> dict[str, Any] | None:
    """The simulator's JSON report on ``line`` (``python -m app simulate --json``), or None."""
    if not line.startswith('{"simulator"'):
        return None
    try:
        report = json.loads(line)["simulator"]
    except (ValueError, KeyError, TypeError):
        return None
    return report if isinstance(report, dict) else None


def status_line(clock: str, report: dict[str, Any] | None, counts: Counts | None) -> str:
    """``12:00:05  events 10.2/s (1234 sent)  windows closed 36  late 2  invalid 1``."""
    if report is None:
        sent = "events -"
    else:
        total = sum(int(report.get(kind, 0)) for kind in ("sent", "repeats", "invalid"))
        sent = f"events {float(report.get('rate', 0.0)):.1f}/s ({total} sent)"
    if counts is None:
        closed = "windows closed ?  late ?  invalid ?"
    else:
        closed = f"windows closed {counts.windows}  late {counts.late}  invalid {counts.invalid}"
    return f"{clock}  {sent}  {closed}"
