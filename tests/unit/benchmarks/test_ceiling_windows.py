"""The ceiling's own windows follow the workers' rule: late by arrival, closed past end + grace.

An event counts iff it arrived before its window's end + grace; a window closes when the
partition's latest arrival passes its end + grace, and every open one once the stream is read.
One-minute windows, 10 s grace; times are seconds after 10:00:00 UTC on 2024-05-01.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.ceiling import _Windows

BASE = 1714557600


class FakeSink:
    """Collects each written result's KV key and event count."""

    def __init__(self) -> None:
        self.written: list[tuple[str, int]] = []

    async def write(self, kv_key: str, subject: str, payload: bytes) -> None:
        self.written.append((kv_key, json.loads(payload)["events"]))


def heartbeat(at: float) -> dict[str, Any]:
    seconds = int(at)
    stamp = f"2024-05-01T10:{seconds // 60:02d}:{seconds % 60:02d}Z"
    return {"student_id": "s1", "type": "engagement", "name": "heartbeat", "occurred_at": stamp,
            "data": {"seconds": 15}}


# (occurred_at, arrival) in order, then: results written before the stream's end, after it
# (KV key suffix -> events counted), and events late.
CASES = [
    pytest.param([(5, 5.5), (30, 30.5)], [], [("0", 2)], 0, id="nothing-passes-end-plus-grace-until-the-end"),
    pytest.param(
        [(5, 5.5), (65, 65.5), (70, 70.5)], [("0", 1)], [("60", 2)], 0,
        id="an-arrival-past-end-plus-grace-closes-the-window",
    ),
    pytest.param([(5, 5.5), (50, 69.9)], [], [("0", 2)], 0, id="arrived-just-before-end-plus-grace-counts"),
    pytest.param([(5, 5.5), (50, 70.0)], [], [("0", 1)], 1, id="arrived-at-end-plus-grace-is-late"),
    pytest.param(
        [(5, 5.5), (75, 75.5), (20, 60.0)], [("0", 1)], [("60", 1)], 1,
        id="arrived-in-time-but-its-window-closed-already-is-late-too",
    ),
]


@pytest.mark.parametrize(("events", "before_end", "after_end", "late"), CASES)
async def test_the_ceiling_counts_by_arrival(
    events: list[tuple[float, float]], before_end: list[tuple[str, int]], after_end: list[tuple[str, int]], late: int
) -> None:
    sink = FakeSink()
    windows = _Windows(60, 10, sink)  # type: ignore[arg-type]  # the fake has what _Windows uses
    for occurred, arrived in events:
        await windows.add(heartbeat(occurred), BASE + arrived)
    assert [(key.rsplit(".", 1)[1], n) for key, n in sink.written] == [(str(BASE + int(s)), n) for s, n in before_end]
    await windows.close_all()
    closed = [(key.rsplit(".", 1)[1], n) for key, n in sink.written[len(before_end):]]
    assert closed == [(str(BASE + int(s)), n) for s, n in after_end]
    assert windows.late == late
