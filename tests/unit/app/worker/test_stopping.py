"""The worker's stop deadline: it gives up once, on its own thread, only if the stop overruns."""

from __future__ import annotations

import threading

import faust
import pytest

from app.worker.process import _Worker
from app.worker.stopping import STOP_SECONDS, StopDeadline


def test_an_overdue_stop_gives_up_once_even_with_a_second_signal() -> None:
    gave_up = threading.Event()
    calls: list[str] = []

    def give_up() -> None:
        calls.append(threading.current_thread().name)
        gave_up.set()

    deadline = StopDeadline(0.05, give_up=give_up)
    deadline.start()
    deadline.start()  # a second Ctrl-C: the deadline does not move, nor double
    assert gave_up.wait(timeout=10)
    assert len(calls) == 1 and calls[0] != threading.main_thread().name  # fires while the loop may be stuck


def test_a_stop_in_time_cancels_the_deadline() -> None:
    gave_up = threading.Event()
    deadline = StopDeadline(0.2, give_up=gave_up.set)
    deadline.start()
    deadline.cancel()
    assert not gave_up.wait(timeout=0.5)


def test_nothing_runs_until_a_signal_starts_it() -> None:
    deadline = StopDeadline(give_up=lambda: pytest.fail("gave up unstarted"))
    assert deadline.seconds == STOP_SECONDS and not deadline.started
    deadline.cancel()  # idempotent, and harmless before start


@pytest.mark.parametrize("seconds", [0, -1.0])
def test_a_deadline_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds must be > 0"):
        StopDeadline(seconds)


def test_the_hook_the_deadline_rides_on_is_still_faust_workers() -> None:
    # _Worker overrides mode's private _schedule_shutdown; if an upgrade renames it, the override
    # would never run and stops would have no deadline.
    assert callable(getattr(faust.Worker, "_schedule_shutdown", None))
    assert _Worker._schedule_shutdown is not faust.Worker._schedule_shutdown
