"""What the dashboard knows: every student's recent final windows, and who is struggling.

Fed one KV value at a time (from a watch of the ``metrics`` bucket, see
:mod:`app.dashboard.live`), in whatever order they come: a window is placed by its start, a
second value for the same window replaces the first, and only the newest ``history`` windows
of each series are kept, and at most ``limit`` students (``DASHBOARD_STUDENTS``): beyond it the
student whose windows changed least recently is forgotten, so memory stays bounded however long
the bucket's history is and however many students it holds. A watch replays the bucket in the
order values were written, so after a restart the students forgotten are still the quietest.

*Struggling*, as the overview says on the page: over a student's last
:data:`STRUGGLE_WINDOWS` windows that have results, answer accuracy below 50 % with at least
:data:`MIN_ANSWERS` answers, or level completion below 50 % with at least
:data:`MIN_FINISHED_LEVELS` levels completed or failed. Sums over several windows rather than
the latest one alone, because one short window holds too few answers to judge anyone by.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from app.dashboard.roster import Roster

__all__ = [
    "ClassState",
    "HISTORY",
    "MIN_ANSWERS",
    "MIN_FINISHED_LEVELS",
    "REFINED_SERIES",
    "STRUGGLE_BELOW",
    "STRUGGLE_WINDOWS",
    "STUDENTS",
    "Series",
    "Struggle",
    "StudentState",
    "Window",
]

#: windows kept per student, metric (and game): what the charts show
HISTORY: Final = 30
#: students kept by default (the ``DASHBOARD_STUDENTS`` setting's default)
STUDENTS: Final = 20_000
#: recent windows the struggling rule sums over
STRUGGLE_WINDOWS: Final = 10
#: accuracy or completion below this share is struggling
STRUGGLE_BELOW: Final = 0.5
MIN_ANSWERS: Final = 5
MIN_FINISHED_LEVELS: Final = 3
#: the metric versions (series) the classroom and the student charts refine; the generic view
#: (:mod:`app.dashboard.generic`) shows every metric, and gives a student's page a panel of
#: each of the others
REFINED_SERIES: Final = frozenset({"engagement", "outcomes", "progression"})


@dataclass(frozen=True, slots=True)
class Window:
    """One final window's result as the workers stored it under ``key``."""

    key: str
    start: int
    value: dict[str, Any]

    @property
    def values(self) -> dict[str, Any]:
        values = self.value.get("values")
        return values if isinstance(values, dict) else {}

    @classmethod
    def final(cls, key: str, start: int, raw: bytes) -> Window | None:
        """The window of a final value stored under ``key``; None for anything else (a value of a
        window still open, or one that is not a JSON object): the pages show results. Parsed once
        per value the watch brings, and shared by every state that keeps it."""
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(value, dict) or value.get("final") is not True:
            return None
        return cls(key, start, value)


class Series:
    """One student's windows of one metric (and game), ordered by start, at most ``limit``."""

    def __init__(self, limit: int = HISTORY) -> None:
        self._limit = limit
        self._starts: list[int] = []
        self._windows: list[Window] = []

    def put(self, window: Window) -> bool:
        """Place ``window``; False when it changes nothing (older than everything kept, or equal)."""
        index = bisect.bisect_left(self._starts, window.start)
        if index < len(self._starts) and self._starts[index] == window.start:
            if self._windows[index] == window:
                return False
            self._windows[index] = window
            return True
        if index == 0 and len(self._starts) >= self._limit:
            return False
        self._starts.insert(index, window.start)
        self._windows.insert(index, window)
        if len(self._starts) > self._limit:
            del self._starts[0], self._windows[0]
        return True

    @property
    def latest(self) -> Window | None:
        return self._windows[-1] if self._windows else None

    def recent(self, count: int | None = None) -> list[Window]:
        """The newest ``count`` windows (all kept, if None), oldest first."""
        return list(self._windows if count is None else self._windows[-count:])

    def __len__(self) -> int:
        return len(self._windows)


@dataclass(frozen=True, slots=True)
class Struggle:
    """Why a student stands out: each reason is a sentence for the page."""

    reasons: tuple[str, ...]


def _count(value: Any) -> int:
    """A count from a stored value; anything that is not a whole number counts as 0 (the bucket
    is written by workers, but a page must not break on a value it did not expect)."""
    return value if type(value) is int and value >= 0 else 0


def _share(parts: Iterable[tuple[int, int]]) -> tuple[int, int]:
    hits = total = 0
    for hit, count in parts:
        hits += hit
        total += count
    return hits, total


@dataclass
class StudentState:
    """Everything shown about one student."""

    student_id: str
    progression: Series = field(default_factory=Series)
    engagement: Series = field(default_factory=Series)
    outcomes: dict[str, Series] = field(default_factory=dict)

    @property
    def last_start(self) -> int | None:
        """The start of the student's newest window of any metric."""
        latest = [s.latest.start for s in (self.progression, self.engagement, *self.outcomes.values()) if s.latest]
        return max(latest) if latest else None

    def accuracy(self) -> tuple[int, int]:
        """``(correct, answers)`` over the last :data:`STRUGGLE_WINDOWS` engagement windows."""
        return _share(
            (_count(w.values.get("correct")), _count(w.values.get("answers")))
            for w in self.engagement.recent(STRUGGLE_WINDOWS)
        )

    def completion(self) -> tuple[int, int]:
        """``(completed, completed + failed)`` over the last :data:`STRUGGLE_WINDOWS` progression windows."""
        return _share(
            (
                _count(w.values.get("levels_completed")),
                _count(w.values.get("levels_completed")) + _count(w.values.get("levels_failed")),
            )
            for w in self.progression.recent(STRUGGLE_WINDOWS)
        )

    def struggle(self) -> Struggle | None:
        """The rule in the module docstring; None when the student is doing fine (or unknown)."""
        reasons = []
        correct, answers = self.accuracy()
        if answers >= MIN_ANSWERS and correct / answers < STRUGGLE_BELOW:
            reasons.append(f"accuracy {correct / answers:.0%} ({correct} of {answers} answers)")
        completed, finished = self.completion()
        if finished >= MIN_FINISHED_LEVELS and completed / finished < STRUGGLE_BELOW:
            reasons.append(f"levels completed {completed / finished:.0%} ({completed} of {finished})")
        return Struggle(tuple(reasons)) if reasons else None


class ClassState:
    """The students seen in the ``metrics`` bucket, at most ``limit`` (the most recently changed),
    with a :class:`Roster` of them kept current as values come."""

    def __init__(self, history: int = HISTORY, *, limit: int = STUDENTS) -> None:
        if limit < 1:
            raise ValueError(f"a class keeps at least 1 student, not {limit}")
        self._history = history
        self._limit = limit
        # by the last change: the first is the one quiet the longest, forgotten first
        self._students: OrderedDict[str, StudentState] = OrderedDict()
        self.roster = Roster()

    def apply(
        self, key: str, metric: str, student_id: str, game_id: str | None, start: int, raw: bytes
    ) -> list[str]:
        """Take one KV value; the students whose rows it changed (none: nothing the dashboard
        shows changed): its own, and the one it made the class forget, if any.

        Values that are not final, or not JSON objects, are left out: the page shows results.
        """
        window = Window.final(key, start, raw)
        return [] if window is None else self.put(metric, student_id, game_id, window)

    def put(self, metric: str, student_id: str, game_id: str | None, window: Window) -> list[str]:
        """:meth:`apply` for a value already parsed (:meth:`Window.final`)."""
        if metric not in ("progression", "engagement") and not (metric == "outcomes" and game_id):
            return []
        student = self._students.get(student_id)
        if student is None:
            student = self._students[student_id] = StudentState(
                student_id, Series(self._history), Series(self._history)
            )
        if metric == "progression":
            series = student.progression
        elif metric == "engagement":
            series = student.engagement
        else:
            assert game_id is not None
            series = student.outcomes.setdefault(game_id, Series(self._history))
        if not series.put(window):  # a new student's first window always changes it
            return []
        self._students.move_to_end(student_id)
        self.roster.put(student_id, struggling=student.struggle() is not None)
        changed = [student_id]
        if len(self._students) > self._limit:
            forgotten, _ = self._students.popitem(last=False)
            self.roster.drop(forgotten)
            changed.append(forgotten)
        return changed

    def student(self, student_id: str) -> StudentState | None:
        return self._students.get(student_id)

    def __len__(self) -> int:
        return len(self._students)

    @property
    def students(self) -> list[StudentState]:
        """By id."""
        return [self._students[sid] for sid in self.roster.ids]

    def struggling(self) -> list[StudentState]:
        return [student for student in self.students if student.struggle() is not None]
