"""The state of one metric on one partition: its open windows, their aggregates and the watermark.

Life cycle, as the caller (an agent) drives it::

    windows = PartitionWindows(definition)
    windows.load(changelog_items)              # on start-up: rebuild from the changelog
    for each record of the partition, in order:
        outcome = windows.add(event, arrived_at)   # Counted | Late | Ignored; InvalidEventError if bad
    windows.promise(after_offset, arrived_from, next_offset=...)   # now and then: see Watermark
    results = windows.close_due()              # ClosedWindow | FailedWindow, once the watermark moved
    changes = windows.take_changes()           # at commit: what to write to the changelog
    current = windows.take_updates()           # now and then (track_updates): open windows changed

Time. ``arrived_at`` is when the platform first stored the event; the watermark ``W`` is the
arrival time every event still to come is at or after (:mod:`tables.watermark`). An event's own
time (its ``time_field``) only places it in its windows. With ``G`` the grace:

- fixed windows (tumbling, hopping): the event is counted in each of its windows ``[start, end)``
  with ``end + G > max(W, arrived_at)``, and is late only if there is none. So an event is late
  exactly when it arrived at or after its window's end + ``G`` (the watermark never passes an
  arrival still to come; were it to, the event is reported late too, with that reason). A hopping
  event can count in its later windows after its earliest ones have closed.
- sessions: likewise with the session it would start, ``[t, t + gap)``: late if
  ``t + gap + G <= max(W, arrived_at)``. Otherwise it joins every open session of its key that
  ``[t, t + gap)`` overlaps (merging them) or starts a new one. Sessions that are due but not yet
  collected by ``close_due`` count as closed, so results never depend on when ``close_due`` runs.

Hence a window holds exactly the events of its time range that arrived before its end + grace:
whatever the worker's speed, restarts or lag, processing the same stored events again gives the
same windows and the same late events. An event dated in the future (a device clock running
ahead) is counted in its own window and moves nothing.

Closing. ``close_due`` closes every window with ``end + G <= W``, each on its own: a window whose
result cannot be computed (an aggregator raising, a value that is not a finite number) comes out
as a :class:`FailedWindow` carrying the error, and the others close normally.

Storage: :mod:`tables.storage_keys` has the key format, :mod:`tables.stored_windows` a window's
value; the watermark's is ``Watermark.to_json()``. Nothing is serialised per event: ``add`` marks
what changed, and ``take_changes`` builds the changes (the caller serialises them) once a commit.

Current values. With ``track_updates=True`` (fixed windows only), ``take_updates`` returns an
:class:`OpenWindowResult` for each open window that counted an event since the previous call: what
its result would be if it closed now. It is tracked apart from ``take_changes``, so the two are
taken at their own pace. Sessions are left out by design: a session's start moves when an earlier
event extends or merges it, so a value published under its start could never be replaced by the
final one and would be left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any, Final, TypeAlias, TypeVar

from tables.errors import ConfigError
from tables.metric import MetricDefinition
from tables.micros import format_micros, from_micros, to_micros
from tables.outcomes import (
    AddResult,
    ClosedWindow,
    Counted,
    Duplicate,
    FailedWindow,
    Ignored,
    Late,
    OpenWindowResult,
    first_non_finite,
)
from tables.schedule import CloseSchedule, OpenWindow
from tables.storage_keys import watermark_key, window_key
from tables.stored_windows import decode_window, encode_window
from tables.watermark import Watermark
from tables.windows import Session

__all__ = ["PartitionWindows"]

Key: TypeAlias = tuple[str, ...]


# Shared instances for the two outcomes that carry nothing event-specific, to spare add() an
# allocation on its common path.
_IGNORED: Final = Ignored()
_COUNTED_ONCE: Final = Counted(1)

_Result = TypeVar("_Result", ClosedWindow, OpenWindowResult)


class PartitionWindows:
    """One metric's windows on one partition; see the module docstring for the rules.

    >>> from tables import Aggregates, Count, MetricDefinition, Tumbling
    >>> answers = MetricDefinition(
    ...     name="answers_per_minute",
    ...     key_fields=("student_id",),
    ...     time_field="ts",
    ...     window=Tumbling(60),
    ...     grace=5,
    ...     aggregates=Aggregates({"answers": Count()}),
    ... )
    >>> windows = PartitionWindows(answers)

    An answer given at 10:00:10 and stored a second later, as record 1 of the partition:

    >>> windows.add({"student_id": "s1", "ts": "2024-05-01T10:00:10Z"}, arrived_at=1714557611.0)
    Counted(windows=1)

    Its window ends at 10:01:00 and closes 5 s of grace later, once the watermark reaches 10:01:05:

    >>> windows.next_due() - 1714557600.0
    65.0
    >>> windows.close_due()
    []

    A reading of the stream promises that every record after record 1 arrived at 10:01:06 or later:

    >>> windows.promise(1, arrived_from=1714557666.0, next_offset=2)
    True
    >>> windows.close_due()  # doctest: +NORMALIZE_WHITESPACE
    [ClosedWindow(metric='answers_per_minute', key={'student_id': 's1'}, start=1714557600.0,
                  end=1714557660.0, events=1, values={'answers': 1})]
    """

    def __init__(self, definition: MetricDefinition, *, track_updates: bool = False) -> None:
        """``track_updates``: keep what :meth:`take_updates` needs (fixed windows only)."""
        if track_updates and isinstance(definition.window, Session):
            raise ConfigError(
                "track_updates",
                track_updates,
                f"applies to fixed windows only; metric {definition.name!r} has sessions, whose start can move",
                kind="Argument",
            )
        self._track_updates = track_updates
        self._definition = definition
        self._where = definition.where
        self._read_key = definition.read_key
        self._read_time_us = definition.read_time_us
        self._read_id = definition.read_id
        self._aggregates = definition.aggregates
        self._grace_us = definition.grace_us
        window = definition.window
        self._gap_us = window.gap_us if isinstance(window, Session) else 0
        self._ranges_us = None if isinstance(window, Session) else window.ranges_us
        self._watermark_key = watermark_key(definition.name)
        self._reset(Watermark())

    def _reset(self, watermark: Watermark) -> None:
        self._watermark = watermark
        self._watermark_dirty = False
        self._fixed: dict[tuple[Key, int], OpenWindow] = {}
        self._sessions: dict[Key, list[OpenWindow]] = {}
        self._schedule = CloseSchedule()
        self._dirty: dict[OpenWindow, None] = {}
        self._removed: dict[tuple[Key, int], None] = {}
        #: open windows that counted an event since the last take_updates (with track_updates)
        self._updated: dict[OpenWindow, None] = {}

    @property
    def definition(self) -> MetricDefinition:
        """The metric this state belongs to."""
        return self._definition

    def watermark(self) -> float | None:
        """The partition's watermark (epoch seconds); None before anything was promised."""
        value_us = self._watermark.value_us
        return None if value_us is None else from_micros(value_us)

    def promise(self, after_offset: int, arrived_from: float, *, next_offset: int | None) -> bool:
        """Every record of the partition after ``after_offset`` arrived at or after ``arrived_from``.

        ``next_offset`` is the offset of the next record to process (None: none processed yet);
        the promise counts once the partition is processed past ``after_offset`` (see
        :class:`~tables.watermark.Watermark`). Returns whether the watermark moved; call
        :meth:`close_due` then.
        """
        moved = self._watermark.promise(after_offset, to_micros(arrived_from), next_offset=next_offset)
        self._watermark_dirty |= moved
        return moved

    def processed(self, next_offset: int) -> bool:
        """The partition is processed up to ``next_offset``: count the promises now due.

        Returns whether the watermark moved.
        """
        moved = self._watermark.processed(next_offset)
        self._watermark_dirty |= moved
        return moved

    def add(self, event: Any, arrived_at: float) -> AddResult:
        """Aggregate ``event``, first stored by the platform at ``arrived_at``, into its open windows.

        Raises :class:`InvalidEventError` for a missing or bad key or time field, or a value an
        aggregator refuses; nothing is applied then. The watermark does not move.
        """
        if self._where is not None and not self._where(event):
            return _IGNORED
        key = self._read_key(event)
        t_us = self._read_time_us(event)
        event_id = None if self._read_id is None else self._read_id(event)
        arrived_us = to_micros(arrived_at)
        watermark_us = self._watermark.value_us
        # Windows with end > horizon (end + grace > max(watermark, arrival)) take the event.
        horizon_us = (arrived_us if watermark_us is None else max(watermark_us, arrived_us)) - self._grace_us
        ranges_us = self._ranges_us
        if ranges_us is None:
            return self._add_to_session(key, t_us, arrived_us, horizon_us, event, event_id)
        return self._add_to_fixed(key, t_us, arrived_us, ranges_us(t_us), horizon_us, event, event_id)

    def _add_to_fixed(
        self,
        key: Key,
        t_us: int,
        arrived_us: int,
        ranges: list[tuple[int, int]],
        horizon_us: int,
        event: Any,
        event_id: str | None,
    ) -> Counted | Late | Duplicate:
        aggregates = self._aggregates
        ts = from_micros(t_us)
        updates: list[tuple[int, int, OpenWindow | None, Any]] = []
        seen = False
        for start_us, end_us in ranges:
            if end_us > horizon_us:
                window = self._fixed.get((key, start_us))
                if window is not None and event_id is not None and window.ids is not None and event_id in window.ids:
                    seen = True  # counted there already: a retry
                    continue
                state = aggregates.initialize() if window is None else window.state
                updates.append((start_us, end_us, window, aggregates.agg(state, event, ts)))
        if not updates and seen:
            assert event_id is not None
            return Duplicate(event_id)
        if not updates:
            start_us, end_us = ranges[-1]
            which = "its window" if len(ranges) == 1 else f"all {len(ranges)} of its windows, the last"
            return self._late(
                t_us, arrived_us, end_us, f"{which} [{format_micros(start_us)}, {format_micros(end_us)})"
            )
        # Every aggregate was computed before anything is changed: a refused value leaves no trace.
        for start_us, end_us, found, state in updates:
            window = found
            if window is None:
                window = OpenWindow(key, start_us, end_us, 0, state, stored=False, ids=self._new_ids())
                self._fixed[(key, start_us)] = window
                self._schedule.add(window)
            window.events += 1
            window.state = state
            if event_id is not None and window.ids is not None:
                window.ids.add(event_id)
            self._dirty[window] = None
            if self._track_updates:
                self._updated[window] = None
        return _COUNTED_ONCE if len(updates) == 1 else Counted(len(updates))

    def _add_to_session(
        self, key: Key, t_us: int, arrived_us: int, horizon_us: int, event: Any, event_id: str | None
    ) -> Counted | Late | Duplicate:
        gap_us = self._gap_us
        if t_us + gap_us <= horizon_us:
            return self._late(
                t_us,
                arrived_us,
                t_us + gap_us,
                f"the session it would start, [{format_micros(t_us)}, {format_micros(t_us + gap_us)})",
            )
        sessions = self._sessions.get(key)
        # The open sessions that [t, t + gap) overlaps. Usually at most two, but open sessions of a
        # key can overlap: an event that arrived too late to join one may still start its own.
        joined = sorted(
            (
                s
                for s in sessions or ()
                if s.end_us > horizon_us and s.start_us < t_us + gap_us and t_us < s.end_us
            ),
            key=lambda s: s.start_us,
        )
        if event_id is not None and any(s.ids is not None and event_id in s.ids for s in joined):
            return Duplicate(event_id)  # a retry: the session holding its first copy takes it in
        aggregates = self._aggregates
        ts = from_micros(t_us)
        if not joined:
            window = OpenWindow(
                key,
                t_us,
                t_us + gap_us,
                1,
                aggregates.agg(aggregates.initialize(), event, ts),
                stored=False,
                ids=None if event_id is None else {event_id},
            )
            self._sessions.setdefault(key, []).append(window)
            self._schedule.add(window)
            self._dirty[window] = None
            return _COUNTED_ONCE
        window, merged = joined[0], joined[1:]
        state = window.state
        for other in merged:
            state = aggregates.merge(state, other.state)
        state = aggregates.agg(state, event, ts)
        # Commit, now that merge and agg have succeeded.
        for other in merged:
            self._drop(other)
        if t_us < window.start_us:
            self._forget_stored(window)
            window.start_us = t_us
        window.end_us = max(t_us + gap_us, *(s.end_us for s in joined))
        window.events = sum(s.events for s in joined) + 1
        window.state = state
        if event_id is not None:
            window.ids = set().union(*(s.ids or () for s in joined), (event_id,))
        self._dirty[window] = None
        return _COUNTED_ONCE

    def _new_ids(self) -> set[str] | None:
        return None if self._read_id is None else set()

    def _late(self, t_us: int, arrived_us: int, end_us: int, what: str) -> Late:
        grace = from_micros(self._grace_us)
        closes_us = end_us + self._grace_us
        watermark_us = self._watermark.value_us
        head = f"metric {self._definition.name!r}: event time {format_micros(t_us)} is late: "
        if arrived_us >= closes_us:
            reason = (
                f"{head}it arrived at {format_micros(arrived_us)}, at or after {what} closed "
                f"({format_micros(closes_us)}, its end + grace of {grace:g}s)"
            )
        else:
            # The watermark passed an arrival still to come: whoever promised it was wrong
            # (a clock further off than the reading's tolerance). Said as it is, not hidden.
            reason = (
                f"{head}it arrived at {format_micros(arrived_us)}, before {what} was due to close "
                f"({format_micros(closes_us)}), but the watermark had already passed that "
                f"({format_micros(watermark_us or closes_us)})"
            )
        return Late(
            reason=reason,
            event_time=from_micros(t_us),
            arrived_at=from_micros(arrived_us),
            watermark=None if watermark_us is None else from_micros(watermark_us),
        )

    def close_due(self) -> list[ClosedWindow | FailedWindow]:
        """Remove and return every window with end + grace <= watermark, by end, start, key.

        Each window is returned exactly once, on its own: one whose result raises or is not
        finite comes out as a :class:`FailedWindow` and the others close normally.
        """
        watermark_us = self._watermark.value_us
        if watermark_us is None:
            return []
        due = self._schedule.pop_until(watermark_us - self._grace_us)
        due.sort(key=lambda w: (w.end_us, w.start_us, w.key))
        closed: list[ClosedWindow | FailedWindow] = []
        for index, window in enumerate(due):
            try:
                closed.append(self._result(window, ClosedWindow))
            except Exception as exc:  # noqa: BLE001 - a user aggregator or finalize: the window's own failure
                closed.append(self._failed(window, exc))
            except BaseException:
                # KeyboardInterrupt, SystemExit, cancellation: not the window's fault. What was not
                # closed yet goes back on the schedule, so a later call closes it.
                for remaining in due[index:]:
                    self._schedule.add(remaining)
                for done in due[:index]:
                    self._drop(done)
                raise
        for window in due:
            self._drop(window)
        return closed

    def open_count(self) -> int:
        """How many windows (or sessions) are open."""
        return len(self._fixed) + sum(map(len, self._sessions.values()))

    def next_due(self) -> float | None:
        """The watermark at which the earliest open window closes; None when none is open."""
        window = self._schedule.earliest()
        return None if window is None else from_micros(window.end_us + self._grace_us)

    def take_changes(self, *, everything: bool = False) -> dict[str, dict[str, Any] | None]:
        """Storage key -> JSON-compatible value of everything changed since the previous call.

        A window created or updated maps to its value, one closed or merged away to None, the
        watermark (if it moved) to its snapshot; each key appears once however often it changed.
        With ``everything``, every open window and the watermark count as changed (a changelog
        rewritten from scratch: see :mod:`tables.compaction`). The values share the aggregate states with the live windows; states are never modified in
        place (see :mod:`tables.aggregators`), so serialising them later is safe, but do not modify
        them.
        """
        metric = self._definition.name
        if everything:
            self._dirty.update(dict.fromkeys(chain(self._fixed.values(), *self._sessions.values())))
            self._watermark_dirty = self._watermark.value_us is not None
        changes: dict[str, dict[str, Any] | None] = {
            window_key(metric, key, start_us): None for key, start_us in self._removed
        }
        for window in self._dirty:
            changes[window_key(metric, window.key, window.start_us)] = encode_window(window)
            window.stored = True
        if self._watermark_dirty:
            changes[self._watermark_key] = self._watermark.to_json()
        self._dirty = {}
        self._removed = {}
        self._watermark_dirty = False
        return changes

    def take_updates(self) -> list[OpenWindowResult]:
        """The current values of every open window that counted an event since the previous call.

        Ordered by end, start, key; each window appears once however many events it counted, and
        a window that closed meanwhile does not appear (its :class:`ClosedWindow` replaces it).
        Always empty unless the state was made with ``track_updates=True``. A window whose result
        cannot be computed now is left out (closing reports it, if it still fails then).
        """
        if not self._updated:
            return []
        updated = sorted(self._updated, key=lambda w: (w.end_us, w.start_us, w.key))
        self._updated = {}
        results = []
        for window in updated:
            try:
                results.append(self._result(window, OpenWindowResult))
            except Exception:  # noqa: BLE001, S112 - a user aggregator or finalize; closing reports it
                continue
        return results

    def load(self, items: Iterable[tuple[str, Mapping[str, Any] | None]]) -> None:
        """Replace the whole state with what a changelog replay describes.

        ``items`` are (storage key, value) pairs in changelog order, as ``take_changes`` produced
        them; a later pair for a key overrides an earlier one and None deletes it. Afterwards the
        same future events give the same results as if the process had never stopped, and
        nothing is pending in ``take_changes``. Raises :class:`StateError` for a key or value
        this definition cannot have written (the state is then left unchanged).

        The watermark resumes from its stored value; time spent down does not count (arrival
        times are stored with the events), so events held up by an outage are judged exactly as
        they would have been without it. Promises pending before are gone: they are read again.
        """
        latest: dict[str, Mapping[str, Any] | None] = dict(items)
        watermark = Watermark()
        windows: list[OpenWindow] = []
        for storage_key, value in latest.items():
            if value is None:
                continue
            if storage_key == self._watermark_key:
                watermark = Watermark.from_json(value, key=storage_key)
            else:
                windows.append(decode_window(self._definition, storage_key, value))
        self._reset(watermark)
        for window in windows:
            if self._ranges_us is None:
                self._sessions.setdefault(window.key, []).append(window)
            else:
                self._fixed[(window.key, window.start_us)] = window
            self._schedule.add(window)

    def _drop(self, window: OpenWindow) -> None:
        """Take a closed or merged-away window out of the state (its schedule entry goes stale)."""
        window.alive = False
        if self._ranges_us is None:
            sessions = self._sessions[window.key]
            sessions.remove(window)
            if not sessions:
                del self._sessions[window.key]
        else:
            del self._fixed[(window.key, window.start_us)]
        self._dirty.pop(window, None)
        self._updated.pop(window, None)
        self._forget_stored(window)

    def _forget_stored(self, window: OpenWindow) -> None:
        """The window leaves its storage key (closed, merged away, or a session whose start moved)."""
        if window.stored:
            self._removed[(window.key, window.start_us)] = None
            window.stored = False

    def _result(self, window: OpenWindow, kind: type[_Result]) -> _Result:
        values = self._aggregates.result(window.state)
        problem = first_non_finite(values)
        if problem is not None:
            raise ValueError(f"value {problem} is not a finite number")
        return kind(
            metric=self._definition.name,
            key=dict(zip(self._definition.key_fields, window.key, strict=True)),
            start=from_micros(window.start_us),
            end=from_micros(window.end_us),
            events=window.events,
            values=values,
        )

    def _failed(self, window: OpenWindow, error: Exception) -> FailedWindow:
        return FailedWindow(
            metric=self._definition.name,
            key=dict(zip(self._definition.key_fields, window.key, strict=True)),
            start=from_micros(window.start_us),
            end=from_micros(window.end_us),
            events=window.events,
            error=f"{type(error).__name__}: {error}",
        )
