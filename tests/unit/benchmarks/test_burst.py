"""The burst's measures: how long after its window's end + grace each final was written, and
which late events were on time (the pipeline's fault) rather than really late."""

from __future__ import annotations

import pytest

from benchmarks.burst import final_delays, judged_late_on_time
from tables import Aggregates, Count, Late, MetricDefinition, PartitionWindows, Tumbling

CASES = [
    pytest.param({"engagement.s1.100": 103.5}, {"engagement.s1.100": 0.5}, id="half-a-second-after-end-plus-grace"),
    pytest.param({"outcomes.s1.g-1.100": 110.0}, {"outcomes.s1.g-1.100": 7.0}, id="a-key-of-three-parts"),
    pytest.param({"progression.s2.98": 100.5}, {"progression.s2.98": -0.5}, id="written-before-it-was-due"),
]


@pytest.mark.parametrize(("seen", "delays"), CASES)
def test_final_delays(seen: dict[str, float], delays: dict[str, float]) -> None:
    # Two-second windows, one second of grace.
    assert final_delays(seen, window=2, grace=1) == pytest.approx(delays)


def _late_reason(*, arrived_at: float, watermark: float | None) -> str:
    """The reason tables gives for a late event of the window [10:00, 10:01), 5 s grace."""
    definition = MetricDefinition(
        name="answers", key_fields=("student_id",), time_field="ts", window=Tumbling(60), grace=5,
        aggregates=Aggregates({"answers": Count()}),
    )
    windows = PartitionWindows(definition)
    if watermark is not None:
        windows.promise(0, watermark, next_offset=None)
    outcome = windows.add({"student_id": "s1", "ts": "2024-05-01T10:00:30Z"}, arrived_at)
    assert isinstance(outcome, Late)
    return outcome.reason


END_PLUS_GRACE = 1714557600.0 + 65

REASON_CASES = [
    pytest.param(END_PLUS_GRACE, None, False, id="arrived-at-end-plus-grace-really-late"),
    pytest.param(END_PLUS_GRACE + 30, END_PLUS_GRACE + 30, False, id="arrived-after-and-the-watermark-there-too"),
    pytest.param(END_PLUS_GRACE - 1, END_PLUS_GRACE + 10, True, id="arrived-in-time-but-the-watermark-had-passed"),
]


@pytest.mark.parametrize(("arrived_at", "watermark", "misjudged"), REASON_CASES)
def test_the_reason_tells_an_on_time_event_judged_late_from_one_that_arrived_late(
    arrived_at: float, watermark: float | None, misjudged: bool
) -> None:
    assert judged_late_on_time(_late_reason(arrived_at=arrived_at, watermark=watermark)) is misjudged
