"""One open page of the classroom overview, for one reader: the page of rows it shows, and the
patches that keep it current.

What a page costs per update does not grow with the class (issue 14): it renders the rows of
the students that changed and are on it, the rows that enter or leave it, the summary (counts
and the first :data:`~app.dashboard.pages.SUMMARY_NAMES` struggling names) and the pager, all
read from a :class:`~app.dashboard.roster.Roster` kept sorted as students come, change and are
forgotten; and a page holds at most :data:`~app.dashboard.pages.PAGE_ROWS` rows.

A reader of every student reads the class's own roster. A reader that may read some students
only gets a roster of its own, filled when the page opens (the one step whose cost grows with
the class, once per page, on request) and kept current from the changes the page is told of.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.access import EVERY_STUDENT, Reader
from app.dashboard.live import Change, students_only
from app.dashboard.markup import Markup
from app.dashboard.pages import (
    PAGE_ROWS,
    PAGER_ID,
    ROWS_ID,
    SUMMARY_ID,
    SUMMARY_NAMES,
    overview_href,
    overview_page,
    pager,
    row_id,
    student_row,
    summary,
)
from app.dashboard.state import ClassState

__all__ = ["OverviewView", "Patch"]

#: one swap for the page's script: the element ``id`` gets ``html`` (an empty ``html`` removes it;
#: a row not on the page yet is placed in ``parent`` by its student id)
Patch = dict[str, str]


class OverviewView:
    """The page of ``rows`` students after ``after`` (None: the first page), of those ``reader``
    may read, by id."""

    def __init__(self, state: ClassState, reader: Reader, *, after: str | None = None, rows: int = PAGE_ROWS) -> None:
        self._state = state
        self._reader = reader
        self._after = after
        self._rows = rows
        self._roster = state.roster if reader is EVERY_STUDENT else state.roster.filtered(reader.may_read)
        self._own_roster = self._roster is not state.roster
        self._shown = self._roster.page(after, rows)

    def page(self, *, window_seconds: int, grace_seconds: int) -> Markup:
        """The whole HTML page."""
        return overview_page(
            [student for sid in self._shown if (student := self._state.student(sid)) is not None],
            summary=self._summary(), pager=self._pager(), after=self._after,
            window_seconds=window_seconds, grace_seconds=grace_seconds,
        )  # fmt: skip

    def snapshot(self) -> list[Patch]:
        """Everything the page shows that can change: what its stream starts with, so a page
        that reconnects catches up. As many rows as the page has, at most."""
        self._shown = self._roster.page(self._after, self._rows)
        return [*self._row_patches(self._shown), *self._totals()]

    @staticmethod
    def wants(change: Change) -> bool:
        """The changes this page's stream is told of: students."""
        return students_only(change)

    def patches(self, changed: set[Change]) -> list[Patch]:
        """What to swap in after ``changed`` students changed or were forgotten: none when the
        reader may read none of them."""
        visible = {sid for sid in changed if isinstance(sid, str) and self._reader.may_read(sid)}
        if not visible:
            return []
        if self._own_roster:
            for student_id in visible:
                student = self._state.student(student_id)
                if student is None:
                    self._roster.drop(student_id)
                else:
                    self._roster.put(student_id, struggling=student.struggle() is not None)
        shown, self._shown = self._shown, self._roster.page(self._after, self._rows)
        now, before = set(self._shown), set(shown)
        gone = [{"id": row_id(student_id), "html": ""} for student_id in shown if student_id not in now]
        rows = self._row_patches(sid for sid in self._shown if sid not in before or sid in visible)
        return [*gone, *rows, *self._totals()]

    def _row_patches(self, student_ids: Iterable[str]) -> list[Patch]:
        patches = []
        for student_id in student_ids:
            student = self._state.student(student_id)
            if student is not None:
                patches.append({"id": row_id(student_id), "html": student_row(student), "parent": ROWS_ID})
        return patches

    def _totals(self) -> list[Patch]:
        # The summary last: a stream's snapshot ends with it.
        return [{"id": PAGER_ID, "html": self._pager()}, {"id": SUMMARY_ID, "html": self._summary()}]

    def _summary(self) -> Markup:
        roster = self._roster
        return summary(len(roster), roster.struggling, roster.first_struggling(SUMMARY_NAMES))

    def _pager(self) -> Markup:
        roster = self._roster
        shown = self._shown
        first = roster.position(self._after) + 1
        previous = None if self._after is None else overview_href(roster.before(self._after, self._rows))
        following = overview_href(shown[-1]) if shown and roster.page(shown[-1], 1) else None
        return pager(first=first, shown=len(shown), total=len(roster), previous=previous, following=following)
