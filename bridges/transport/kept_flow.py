"""The stream partitions a member keeps through a cooperative rebalance, flowing on meanwhile.

faust empties every agent's queue whenever its flow control is cleared, and ``resume()`` clears
too: on a revoke, and several times while it recovers the tables of an assignment. Its streams
have not tracked those events yet, so nothing acknowledges them, and the only way to read them
again is to rewind their partitions to the committed offset — which processes twice whatever
was processed since that commit, unless the partitions were drained, committed and paused first.
That is why faust stops every partition on every rebalance.

:class:`KeptFlow` takes over the flow control's ``clear`` so that, while a member keeps some
partitions through a rebalance, their queued events survive it: they were delivered in order
and are processed in order, so these partitions need no pause, no rewind and no drain. Events
of every other partition are cleared as before (the lost ones are read by their next owner
from the commit; the gained ones have delivered nothing yet).

A stream queue full when it is cleared hands the room it gains to the puts waiting for it, as
gets would: one of them may hold a kept partition's event, and faust's conductor, which delivers
every partition, waits in such a put. The tables' recovery queue (their changelogs' records)
is cleared as faust clears it.

Only while the flow is active: faust's streams skip (and acknowledge) whatever they take while
it is suspended, so a clear with the flow suspended — a worker stopping, an eager rebalance —
clears everything, as faust's own does.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import Callable
from typing import Any

from faust.types import TP
from mode.utils.queues import FlowControlEvent

__all__ = ["KeptFlow"]


class KeptFlow:
    """Which stream partitions flow through the rebalance under way; installed on ``flow_control``."""

    def __init__(
        self, flow_control: FlowControlEvent, *, recovery_queue: Callable[[], object | None] = lambda: None
    ) -> None:
        """``recovery_queue``: the queue faust's table recovery reads the changelogs through
        (``TableManager.changelog_queue``; None while there is none), cleared as faust clears it."""
        self._flow_control = flow_control
        self.recovery_queue = recovery_queue
        #: the stream partitions kept flowing through the rebalance under way (empty: none)
        self.kept: frozenset[TP] = frozenset()
        flow_control.clear = types.MethodType(_clear_all_but_kept, flow_control)  # type: ignore[method-assign]
        flow_control._kept_flow = self  # type: ignore[attr-defined]  # read by _clear_all_but_kept

    def keep(self, tps: frozenset[TP]) -> None:
        """From now on, clears spare the queued events of ``tps`` (none: everything is cleared)."""
        self.kept = tps

    def spares(self, tp: TP) -> bool:
        """Whether ``tp`` flows through the rebalance: not paused, rewound or cleared."""
        return tp in self.kept


def _clear_all_but_kept(self: FlowControlEvent) -> None:
    """``FlowControlEvent.clear``, sparing the events of kept partitions while the flow is on."""
    kept_flow: KeptFlow = self._kept_flow  # type: ignore[attr-defined]
    kept = kept_flow.kept
    recovery_queue = kept_flow.recovery_queue()
    for queue in list(self._queues):
        if not kept or not self.is_active() or queue is recovery_queue:
            # faust's own: events and waiting puts dropped alike. The recovery queue holds no
            # stream's events, and its recovery reads the changelogs again from the offsets it
            # applied; a record let in after the ones cleared ahead of it would skip them.
            queue.clear()
            continue
        # mode's FlowControlQueue.clear empties this same deque (asyncio.Queue's buffer).
        buffered: deque[Any] = queue._queue  # type: ignore[attr-defined]
        spared = [item for item in buffered if _tp_of(item) in kept]
        buffered.clear()
        buffered.extend(spared)
        _make_room(queue)


def _make_room(queue: Any) -> None:
    """Wake the puts waiting for room, one per free slot, as the gets of the removed events
    would have.

    A full queue's puts wait until a get wakes one of them. Left asleep after the events ahead
    of them were cleared, they wait forever once the queue is empty — and the one waiting is
    faust's conductor, so the fetcher stops delivering every partition, kept or not. The event
    a put holds may be a kept partition's, which must not be dropped, so puts are woken here,
    not cancelled as faust's clear cancels them.
    """
    putters = queue._putters
    free = queue.maxsize - queue.qsize()  # an unbounded queue (maxsize 0) never has puts waiting
    while putters and free > 0:
        queue._wakeup_next(putters)  # asyncio.Queue's own hand-over to the next put
        free -= 1


def _tp_of(item: Any) -> TP | None:
    """The partition of a queued event (None for anything else, which is cleared)."""
    message = getattr(item, "message", None)
    return getattr(message, "tp", None)
