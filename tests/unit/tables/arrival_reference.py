"""References for arrival-time windowing, computed straight from the rule, for the property tests.

The rule: a window holds the events of its time range that arrived before its end + grace, and
an event is late when it arrived too late for every window it belongs to. No watermark, no
promises, no close schedule, no storage: the references see the records (in partition order) and
their arrivals, and nothing else, so any effect of processing speed, collection timing or restarts
on ``PartitionWindows`` shows up as a difference. Times are integer milliseconds after ``T0``
(``oracle.Arrival``, whose ``now_ms`` is the arrival).
"""

from __future__ import annotations

from collections import defaultdict

from .oracle import T0_US, Arrival, Results, reference_values


def fixed_reference(
    records: list[Arrival], size_ms: int, step_ms: int, grace_ms: int
) -> tuple[Results, set[int]]:
    """Per-window results and the indices of late records, for tumbling or hopping windows."""
    members: dict[tuple[str, int], list[Arrival]] = defaultdict(list)
    late: set[int] = set()
    for i, record in enumerate(records):
        t = record.t_ms
        starts = [k * step_ms for k in range((t - size_ms) // step_ms, t // step_ms + 1)]
        in_time = [s for s in starts if s <= t < s + size_ms and record.now_ms < s + size_ms + grace_ms]
        if not in_time:
            late.add(i)
        for start in in_time:
            members[(record.student, start)].append(record)
    return _results(members), late


def session_reference(records: list[Arrival], gap_ms: int, grace_ms: int) -> tuple[Results, set[int]]:
    """Per-session results and the indices of late records; arrivals must never decrease.

    An event at ``t`` arriving at ``a`` is late when the session it would start, ``[t, t + gap)``,
    ended at or before ``a - grace``. Otherwise it joins every session of its key that
    ``[t, t + gap)`` overlaps and that it arrived before the end + grace of, merging them, or
    starts its own. (With arrivals in order, a session once too old for one arrival is too old
    for every later one, so sessions never need to be un-merged.)
    """
    assert all(a.now_ms <= b.now_ms for a, b in zip(records, records[1:], strict=False)), "arrivals must not decrease"
    # student -> open sessions as (start, end, [(record index, record), ...])
    sessions: dict[str, list[tuple[int, int, list[tuple[int, Arrival]]]]] = defaultdict(list)
    late: set[int] = set()
    for i, record in enumerate(records):
        t, arrived = record.t_ms, record.now_ms
        if t + gap_ms + grace_ms <= arrived:
            late.add(i)
            continue
        own = sessions[record.student]
        joined = [s for s in own if arrived < s[1] + grace_ms and s[0] < t + gap_ms and t < s[1]]
        for session in joined:
            own.remove(session)
        start = min([t, *(s[0] for s in joined)])
        end = max([t + gap_ms, *(s[1] for s in joined)])
        # Members in record order: Last breaks event-time ties by the later record.
        items = sorted([(i, record), *(item for s in joined for item in s[2])], key=lambda item: item[0])
        own.append((start, end, items))
    members = {
        (student, start): [record for _, record in items]
        for student, own in sessions.items()
        for start, _, items in own
    }
    assert len(members) == sum(len(own) for own in sessions.values()), "two sessions of a key share a start"
    return _results(members), late


def _results(members: dict[tuple[str, int], list[Arrival]]) -> Results:
    return {
        (student, T0_US + start_ms * 1000): (len(items), reference_values(items))
        for (student, start_ms), items in members.items()
    }
