"""What the generic view knows: for every metric version in the bucket, each key's newest final
windows, whatever the metric (its name is never looked at here).

Fed the windows the class's watch parses (:meth:`~app.dashboard.state.Window.final`), one at a
time and in any order: a window is placed by its start (:class:`~app.dashboard.state.Series`),
so a late or replayed one never hides a newer one. Each metric version (its *series*, the KV
key's first token: ``hints``, ``hints_v2``) is kept apart, since two versions' values may differ
in meaning. A key is its parts joined by dots, as in the KV key (``s-42`` or ``s-42.g1``; ids
hold no dot, so the spelling is unambiguous), and keys are kept in that spelling's order, the
order the pages list them in.

Bounded: at most ``limit`` keys per series (``DASHBOARD_METRIC_KEYS``), beyond it the key whose
windows changed least recently is forgotten, and at most ``history`` windows per key. The number
of series is that of the metric versions whose workers wrote to the bucket.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from app.dashboard.roster import Roster
from app.dashboard.state import HISTORY, Series, Window
from contract.names import parse_series

__all__ = ["KeyChange", "KeyedMetric", "KeyedMetrics", "METRIC_KEYS", "key_of"]

#: keys kept per metric version by default (the ``DASHBOARD_METRIC_KEYS`` setting's default)
METRIC_KEYS: Final = 20_000


def key_of(parts: Sequence[str]) -> str:
    """A key as the pages spell it: its parts joined by dots."""
    return ".".join(parts)


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A key of a metric version whose windows changed, or that was forgotten."""

    series: str
    key: str

    @property
    def first_part(self) -> str:
        """The key's first part (``student_id``, for every metric of the project)."""
        return self.key.partition(".")[0]


class KeyedMetric:
    """One metric version's keys, at most ``limit``, each with its newest ``history`` windows."""

    def __init__(self, series: str, *, history: int = HISTORY, limit: int = METRIC_KEYS) -> None:
        if limit < 1:
            raise ValueError(f"a metric keeps at least 1 key, not {limit}")
        self.series = series
        self.name, self.version = parse_series(series)
        self._history = history
        self._limit = limit
        # by the last change: the first is the one quiet the longest, forgotten first
        self._keys: OrderedDict[str, Series] = OrderedDict()
        #: the keys in order (a roster with no one struggling: the generic view judges no one)
        self.roster = Roster()

    def put(self, key: str, window: Window) -> list[str]:
        """Take one final window of ``key``; the keys it changed: its own, and the one it made
        the metric forget, if any (none: nothing shown changed)."""
        series = self._keys.get(key)
        if series is None:
            series = self._keys[key] = Series(self._history)
        if not series.put(window):  # a new key's first window always changes it
            return []
        self._keys.move_to_end(key)
        self.roster.put(key, struggling=False)
        changed = [key]
        if len(self._keys) > self._limit:
            forgotten, _ = self._keys.popitem(last=False)
            self.roster.drop(forgotten)
            changed.append(forgotten)
        return changed

    def windows(self, key: str) -> Series | None:
        return self._keys.get(key)

    def latest(self, key: str) -> Window | None:
        series = self._keys.get(key)
        return series.latest if series is not None else None

    def keys_of(self, first_part: str, count: int) -> list[str]:
        """The first ``count`` keys whose first part is ``first_part`` (a student's), in order:
        found by bisection, whatever the number of keys."""
        found = [first_part] if first_part in self.roster else []
        prefix = f"{first_part}."
        # Every key ``<first_part>.<more>`` sorts after ``<first_part>.`` and before any other.
        for key in self.roster.page(prefix, count):
            if len(found) >= count or not key.startswith(prefix):
                break
            found.append(key)
        return found

    def __len__(self) -> int:
        return len(self._keys)


class KeyedMetrics:
    """Every metric version seen in the bucket, by series."""

    def __init__(self, history: int = HISTORY, *, limit: int = METRIC_KEYS) -> None:
        if limit < 1:
            raise ValueError(f"a metric keeps at least 1 key, not {limit}")
        self._history = history
        self._limit = limit
        self._metrics: dict[str, KeyedMetric] = {}

    def put(self, series: str, key_parts: Sequence[str], window: Window) -> list[KeyChange]:
        """Take one final window of ``series``'s key ``key_parts``; the keys it changed."""
        metric = self._metrics.get(series)
        if metric is None:
            metric = self._metrics[series] = KeyedMetric(series, history=self._history, limit=self._limit)
        return [KeyChange(series, key) for key in metric.put(key_of(key_parts), window)]

    def metric(self, series: str) -> KeyedMetric | None:
        return self._metrics.get(series)
