"""An offline oracle for windowed results, for the property tests.

It sees the whole list of arrivals at once and computes, with no state machine, what each window
must report. Times are integer milliseconds after ``T0`` so its arithmetic is exact and
independent of the library's microsecond conversion, which the comparison therefore checks too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .clock import T0

T0_US = int(T0) * 1_000_000

#: (student, window start in epoch microseconds) -> (number of events, aggregate values)
Results = dict[tuple[str, int], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Arrival:
    """One event as it reached the partition: its event time and its arrival."""

    student: str
    t_ms: int
    now_ms: int
    score: int
    question: str

    @property
    def event(self) -> dict[str, Any]:
        return {
            "student_id": self.student,
            "ts": T0 + self.t_ms / 1000,
            "score": self.score,
            "question": self.question,
        }

    @property
    def now(self) -> float:
        return T0 + self.now_ms / 1000


def reference_values(items: list[Arrival]) -> dict[str, Any]:
    """The aggregates of ``items`` (in arrival order), computed directly."""
    scores = [item.score for item in items]
    # Last: the largest event time; on a tie the later arrival, i.e. the larger index.
    _, _, last = max((item.t_ms, index, item.score) for index, item in enumerate(items))
    return {
        "n": len(items),
        "total": sum(scores),
        "low": min(scores),
        "high": max(scores),
        "avg": sum(scores) / len(scores),
        "last": last,
        "questions": len({item.question for item in items}),
    }


def session_oracle(arrivals: list[Arrival], gap_ms: int) -> Results:
    """Per-session results when nothing is late: sort each key's events, split at gaps >= gap."""
    by_student: dict[str, list[tuple[int, Arrival]]] = defaultdict(list)
    for index, arrival in enumerate(arrivals):
        by_student[arrival.student].append((index, arrival))
    members: dict[tuple[str, int], list[Arrival]] = {}
    for student, indexed in by_student.items():
        session: list[tuple[int, Arrival]] = []
        for index, arrival in sorted(indexed, key=lambda pair: (pair[1].t_ms, pair[0])):
            if session and arrival.t_ms - session[-1][1].t_ms >= gap_ms:
                members[(student, session[0][1].t_ms)] = [a for _, a in sorted(session, key=lambda p: p[0])]
                session = []
            session.append((index, arrival))
        members[(student, session[0][1].t_ms)] = [a for _, a in sorted(session, key=lambda p: p[0])]
    return _results(members)


def _results(members: dict[tuple[str, int], list[Arrival]]) -> Results:
    return {
        (student, T0_US + start_ms * 1000): (len(items), reference_values(items))
        for (student, start_ms), items in members.items()
    }
