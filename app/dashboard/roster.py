"""Which students a page counts, in id order, and which of them are struggling: kept sorted as
students come and go, so a page of rows, the counts and the first struggling names are read
without sorting or scanning the class (issue 14: a page's cost per update must not grow with
the class).

The class keeps one roster of every student (:class:`~app.dashboard.state.ClassState`); a page
whose reader may read only some students keeps its own, filled once when the page opens.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

__all__ = ["Roster"]


def _insert(ids: list[str], student_id: str) -> None:
    index = bisect.bisect_left(ids, student_id)
    if index == len(ids) or ids[index] != student_id:
        ids.insert(index, student_id)


def _remove(ids: list[str], student_id: str) -> None:
    index = bisect.bisect_left(ids, student_id)
    if index < len(ids) and ids[index] == student_id:
        del ids[index]


class Roster:
    """Student ids in order, and the struggling ones among them."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._struggling: list[str] = []

    def put(self, student_id: str, *, struggling: bool) -> None:
        """``student_id`` is on the roster, struggling or not (whether it was before or not)."""
        _insert(self._ids, student_id)
        if struggling:
            _insert(self._struggling, student_id)
        else:
            _remove(self._struggling, student_id)

    def drop(self, student_id: str) -> None:
        _remove(self._ids, student_id)
        _remove(self._struggling, student_id)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, student_id: object) -> bool:
        if not isinstance(student_id, str):
            return False
        index = bisect.bisect_left(self._ids, student_id)
        return index < len(self._ids) and self._ids[index] == student_id

    @property
    def ids(self) -> list[str]:
        """Every id, in order (a copy)."""
        return list(self._ids)

    @property
    def struggling(self) -> int:
        return len(self._struggling)

    def first_struggling(self, count: int) -> list[str]:
        """The first ``count`` struggling ids, in order."""
        return self._struggling[:count]

    def page(self, after: str | None, size: int) -> list[str]:
        """The first ``size`` ids after ``after`` (from the first, if None), in order."""
        start = self.position(after)
        return self._ids[start : start + size]

    def position(self, after: str | None) -> int:
        """How many ids come before the page after ``after``."""
        return 0 if after is None else bisect.bisect_right(self._ids, after)

    def before(self, after: str | None, size: int) -> str | None:
        """Where the page of ``size`` ids before the page after ``after`` starts: the ``after``
        of the previous page (None: the first page, which also has no previous one)."""
        if after is None:
            return None
        start = self.position(after) - size
        return self._ids[start - 1] if start > 0 else None

    def filtered(self, keep: Callable[[str], bool]) -> Roster:
        """The ids ``keep`` accepts, as a roster of their own."""
        roster = Roster()
        roster._ids = [student_id for student_id in self._ids if keep(student_id)]
        roster._struggling = [student_id for student_id in self._struggling if keep(student_id)]
        return roster
