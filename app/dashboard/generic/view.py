"""One open page of a metric, for one reader, and a student's panels of the metrics without a
page of their own: what they show, and the patches that keep them current.

Like the classroom overview (:mod:`app.dashboard.overview`), what a metric's page costs per update
does not grow with the number of keys: it renders the rows of the keys that changed and are on it,
the rows that enter or leave it, and the pager, read from the metric's
:class:`~app.dashboard.roster.Roster` of keys; a page holds at most
:data:`~app.dashboard.pages.PAGE_ROWS` rows.

Who sees which key (:class:`KeyAccess`): a reader of every student sees every key; any other
reader sees the keys whose ``student_id`` key field is a student it may read, from a roster of its
own filled when the page opens, and nothing of a metric that has no ``student_id`` key field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from app.access import EVERY_STUDENT, Reader
from app.dashboard.generic.pages import (
    METRIC_PAGER_ID,
    METRIC_ROWS_ID,
    STUDENT_FIELD,
    key_row,
    key_row_id,
    metric_body,
    metric_href,
    metric_pager,
    metric_panel,
    metric_panels,
    metric_panels_id,
)
from app.dashboard.generic.state import KeyChange, KeyedMetric, KeyedMetrics
from app.dashboard.live import Change
from app.dashboard.markup import Markup
from app.dashboard.pages import PAGE_ROWS
from app.dashboard.roster import Roster
from app.dashboard.state import HISTORY, Window
from contract.registry import MetricDescription

__all__ = ["KeyAccess", "MetricView", "Patch", "StudentMetrics"]

#: one swap for the page's script (see :mod:`app.dashboard.overview`); ``order`` places a new row
Patch = dict[str, str]
#: keys of one metric a student's panel reads (a metric per student and game: games at most)
PANEL_KEYS: Final = 20


class KeyAccess:
    """Which keys of one metric ``reader`` may see."""

    def __init__(self, description: MetricDescription, reader: Reader) -> None:
        self._reader = reader
        fields = description.key_fields
        self._student = fields.index(STUDENT_FIELD) if STUDENT_FIELD in fields else None

    @property
    def everything(self) -> bool:
        return self._reader is EVERY_STUDENT

    @property
    def any(self) -> bool:
        """Whether the reader may see any key: a metric not keyed by student is for readers of
        every student only (its keys may sum up any student's events)."""
        return self.everything or self._student is not None

    def may_see(self, key: str) -> bool:
        if self.everything:
            return True
        if self._student is None:
            return False
        parts = key.split(".")
        return self._student < len(parts) and self._reader.may_read(parts[self._student])


class MetricView:
    """The page of ``rows`` keys after ``after`` (None: the first page) of one metric version, of
    those ``reader`` may see, in order. The version's keys are looked up in ``metrics`` at each
    update: a page opened before the version's first window closed fills as windows come."""

    def __init__(
        self,
        metrics: KeyedMetrics,
        description: MetricDescription,
        reader: Reader,
        *,
        after: str | None = None,
        rows: int = PAGE_ROWS,
    ) -> None:
        self._metrics = metrics
        self._description = description
        self._series = description.series
        self._access = KeyAccess(description, reader)
        self._after = after
        self._rows = rows
        self._own: Roster | None = None
        if not self._access.everything:
            metric = metrics.metric(self._series)
            self._own = metric.roster.filtered(self._access.may_see) if metric is not None else Roster()
        self._shown = self._roster.page(after, rows)

    @property
    def _metric(self) -> KeyedMetric | None:
        return self._metrics.metric(self._series)

    @property
    def _roster(self) -> Roster:
        if self._own is not None:
            return self._own
        metric = self._metric
        return metric.roster if metric is not None else Roster()

    def wants(self, change: Change) -> bool:
        """The changes this page's stream is told of: its version's keys the reader may see."""
        return isinstance(change, KeyChange) and change.series == self._series and self._access.may_see(change.key)

    def page(self, versions: Sequence[int]) -> Markup:
        """The page's body (``versions``: the metric's versions, for links to the others)."""
        rows = [row for key in self._shown if (row := self._row(key)) is not None]
        return metric_body(self._description, versions, rows, pager=self._pager(), after=self._after)

    def snapshot(self) -> list[Patch]:
        """Everything the page shows that can change, as its stream starts."""
        self._shown = self._roster.page(self._after, self._rows)
        return [*self._row_patches(self._shown), self._pager_patch()]

    def patches(self, changed: set[Change]) -> list[Patch]:
        """What to swap in after ``changed`` (keys of this version that changed or were forgotten)."""
        keys = {change.key for change in changed if self.wants(change) and isinstance(change, KeyChange)}
        if not keys:
            return []
        metric = self._metric
        if self._own is not None:
            for key in keys:
                if metric is None or metric.windows(key) is None:
                    self._own.drop(key)
                else:
                    self._own.put(key, struggling=False)
        shown, self._shown = self._shown, self._roster.page(self._after, self._rows)
        now, before = set(self._shown), set(shown)
        gone = [{"id": key_row_id(key), "html": ""} for key in shown if key not in now]
        rows = self._row_patches(key for key in self._shown if key not in before or key in keys)
        return [*gone, *rows, self._pager_patch()]

    def _row(self, key: str) -> Markup | None:
        metric = self._metric
        window = metric.latest(key) if metric is not None else None
        return key_row(self._description, key, window) if window is not None else None

    def _row_patches(self, keys: Iterable[str]) -> list[Patch]:
        return [
            {"id": key_row_id(key), "html": row, "parent": METRIC_ROWS_ID, "order": key}
            for key in keys
            if (row := self._row(key)) is not None
        ]

    def _pager_patch(self) -> Patch:
        return {"id": METRIC_PAGER_ID, "html": self._pager()}

    def _pager(self) -> Markup:
        roster, shown, name, version = self._roster, self._shown, self._description.name, self._description.version
        previous = None
        if self._after is not None:
            previous = metric_href(name, version=version, after=roster.before(self._after, self._rows))
        following = metric_href(name, version=version, after=shown[-1]) if shown and roster.page(shown[-1], 1) else None
        first = roster.position(self._after) + 1
        return metric_pager(first=first, shown=len(shown), total=len(roster), previous=previous, following=following)


class StudentMetrics:
    """The panels of a student's page for the metric versions ``descriptions`` (those keyed by
    student first, without a page of their own): the student's newest :data:`HISTORY` windows of
    each, over its first :data:`PANEL_KEYS` keys (games, say)."""

    def __init__(self, metrics: KeyedMetrics, descriptions: Sequence[MetricDescription], student_id: str) -> None:
        self._metrics = metrics
        self._descriptions = {d.series: d for d in descriptions if d.key_fields[0] == STUDENT_FIELD}
        self._student_id = student_id

    def wants(self, change: Change) -> bool:
        return (
            isinstance(change, KeyChange)
            and change.series in self._descriptions
            and change.first_part == self._student_id
        )

    def panels(self) -> Markup:
        panels = []
        for series, description in sorted(self._descriptions.items()):
            metric = self._metrics.metric(series)
            if metric is None:
                continue
            windows: list[tuple[str, Window]] = []
            for key in metric.keys_of(self._student_id, PANEL_KEYS):
                kept = metric.windows(key)
                windows += [(key, window) for window in kept.recent()] if kept is not None else []
            if windows:
                windows.sort(key=lambda pair: (-pair[1].start, pair[0]))
                panels.append(metric_panel(description, windows[:HISTORY]))
        return metric_panels(self._student_id, panels)

    def snapshot(self) -> list[Patch]:
        return [{"id": metric_panels_id(self._student_id), "html": self.panels()}]

    def patches(self, changed: set[Change]) -> list[Patch]:
        return self.snapshot() if any(self.wants(change) for change in changed) else []
