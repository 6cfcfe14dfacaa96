"""Generated sessions through a metric's test driver, as a live class sends them, and the oracle.

Each event arrives 0-3 s after it occurred, except about one in twenty held back until after its
window's end + grace (late: the oracle leaves them out); about one in twenty is sent again up to
40 s later (a retry: counted once, or late if its window closed meanwhile). The driver's clock
follows the arrivals, so windows close while the class goes on, as in a worker that keeps up.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.windowed import MetricDriver
from tables import MetricDefinition
from testkit.oracle import event_epoch, expected_results, generate_sessions
from testkit.pipeline import values_match

WINDOW, GRACE = 60, 10
T0 = 1_714_557_600  # 2024-05-01T10:00:00Z


@dataclass
class Replay:
    driver: MetricDriver
    events: list[dict[str, Any]]
    #: ids of the events sent only after their window closed
    late: set[str]
    #: ids of the events sent twice
    retried: set[str]

    @property
    def metric(self) -> str:
        return self.driver.definition.name

    def expected(self) -> dict[str, dict[str, Any]]:
        """The oracle's finals of this metric."""
        everything = expected_results(self.events, window_seconds=WINDOW, exclude_ids=self.late)
        return {key: value for key, value in everything.items() if key.startswith(f"{self.metric}.")}


def replay(define: Callable[[int, int], MetricDefinition], *, seed: int, students: int = 6, minutes: int = 8) -> Replay:
    rng = random.Random(seed)
    events = generate_sessions(seed, students, minutes, T0)
    sends: list[tuple[float, dict[str, Any]]] = []
    late: set[str] = set()
    retried: set[str] = set()
    for event in events:
        occurred = event_epoch(event)
        if rng.random() < 0.05:
            closes = occurred // WINDOW * WINDOW + WINDOW + GRACE
            arrival = closes + rng.uniform(0, 30)
            late.add(event["event_id"])
        else:
            arrival = occurred + rng.uniform(0, 3)
        sends.append((arrival, event))
        if rng.random() < 0.05:
            sends.append((arrival + rng.uniform(0, 40), event))
            retried.add(event["event_id"])
    sends.sort(key=lambda send: send[0])
    driver = MetricDriver(define, now=T0, window_seconds=WINDOW, grace_seconds=GRACE)
    for arrival, event in sends:
        driver.advance_to(arrival)
        driver.send(event)
    driver.close_all()
    return Replay(driver, events, late, retried)


def assert_as_the_oracle(run: Replay) -> None:
    """The finals equal the oracle's, each published once as stored, and the only dead letters
    are the late events the metric reads (and retries that came after their window closed)."""
    driver, metric = run.driver, run.metric
    expected = run.expected()
    finals = driver.finals()
    assert values_match(finals, expected), sorted(set(finals) ^ set(expected))
    kv = driver.kv
    assert {p.msg_id: p.payload for p in driver.published} == {f"result:{key}": kv[key] for key in expected}
    for published in driver.published:
        document = published.json()
        assert published.subject == f"results.{metric}.{document['key']['student_id']}"
    letters = driver.dead_letters
    assert {letter.subject for letter in letters} <= {f"deadletter.late.{metric}"}
    late_ids = {letter.json()["event_id"] for letter in letters}
    where = driver.definition.where or (lambda event: True)
    read = {event["event_id"] for event in run.events if where(event)}
    assert run.late & read <= late_ids <= (run.late | run.retried) & read
    stats = driver.stats
    assert stats["windows_closed"] == len(expected) and stats["late"] == len(letters)
    # Not a trivial run: windows, late events and retries counted once, for this metric too.
    assert len(expected) >= 20 and run.late & read and stats["duplicates"] > 0
