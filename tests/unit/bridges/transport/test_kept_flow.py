"""The flow control's clears spare the partitions kept through a rebalance, and only those."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from bridges.transport.kept_flow import KeptFlow

KEPT = TP("events", 0)
LOST = TP("events", 1)


@dataclass
class _Message:
    tp: TP
    offset: int


@dataclass
class _Event:
    message: _Message


def _queued(queue: FlowControlQueue) -> list[tuple[int, int]]:
    items = []
    while not queue.empty():
        event = queue.get_nowait()
        items.append((event.message.tp.partition, event.message.offset))
    return items


@pytest.fixture
def flow() -> tuple[FlowControlEvent, KeptFlow, FlowControlQueue]:
    control = FlowControlEvent(initially_suspended=False)
    kept = KeptFlow(control)
    queue: FlowControlQueue = FlowControlQueue(flow_control=control, clear_on_resume=True)
    for offset in range(1, 4):
        for tp in (KEPT, LOST):
            queue.put_nowait(_Event(_Message(tp, offset)))
    queue.put_nowait("not an event")
    return control, kept, queue


def test_a_clear_keeps_the_kept_partitions_events_in_order(flow) -> None:
    control, kept, queue = flow
    kept.keep(frozenset({KEPT}))
    control.clear()
    assert _queued(queue) == [(0, 1), (0, 2), (0, 3)]


def test_resuming_clears_all_but_the_kept_partitions_too(flow) -> None:
    control, kept, queue = flow
    kept.keep(frozenset({KEPT}))
    control.resume()
    assert _queued(queue) == [(0, 1), (0, 2), (0, 3)]


def test_with_nothing_kept_a_clear_empties_every_queue(flow) -> None:
    control, kept, queue = flow
    kept.keep(frozenset())
    control.clear()
    assert queue.empty()


def test_with_the_flow_suspended_a_clear_empties_every_queue(flow) -> None:
    """A stream skips and acknowledges what it takes while the flow is suspended: an event kept
    then would be lost, not processed."""
    control, kept, queue = flow
    kept.keep(frozenset({KEPT}))
    control.suspend()
    control.clear()
    assert queue.empty()
    assert kept.spares(KEPT) and not kept.spares(LOST)
