"""A worker's stop deadline: a drain still running :data:`STOP_SECONDS` after the signal ends the process.

On SIGTERM or SIGINT faust's Worker drains: the events in flight are processed, the offsets
committed, the group left (its leases deleted, so other workers take over at once). Nothing in
faust bounds how long that takes, and a stop stuck on something outside (NATS gone in the middle
of a commit) would hold the process, and a rolling update waiting for it, for good. So the first
signal also starts a timer on a thread of its own, which fires even while the event loop is
blocked: if the process is still there after :data:`STOP_SECONDS`, it says so and exits with
status 1. What was not committed is processed again by the partitions' next owners, who take
them once the leases expire (``SESSION_TIMEOUT``).

Whatever runs the workers gives them longer than this before it kills them (Kubernetes'
``terminationGracePeriodSeconds`` in ``deploy/k8s/``, compose's ``stop_grace_period``); a test
holds the deployment files to it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Final

from app.logs import say

__all__ = ["STOP_SECONDS", "StopDeadline"]

#: seconds a worker may take to stop after the first SIGTERM or SIGINT (a clean stop takes well
#: under one: BENCHMARKS.md, failover after SIGTERM)
STOP_SECONDS: Final = 30.0

#: exit status of a worker whose drain ran past the deadline
_OVERDUE: Final = 1


def _exit_overdue() -> None:
    say(
        f"error: the worker did not stop within {STOP_SECONDS:.0f} s of the signal; exiting without "
        "finishing (its partitions move on once its leases expire)",
        logger="app.worker", level="error", file=sys.stderr,
    )
    # Not sys.exit: this runs on the timer's thread, and the main one is the one that is stuck.
    os._exit(_OVERDUE)


class StopDeadline:
    """Calls ``give_up`` (by default: say so, exit 1) ``seconds`` after :meth:`start`, unless
    :meth:`cancel` comes first. :meth:`start` counts once; both are idempotent."""

    def __init__(self, seconds: float = STOP_SECONDS, *, give_up: Callable[[], None] = _exit_overdue) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.seconds = seconds
        self._give_up = give_up
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._timer is not None

    def start(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a second signal does not move the deadline
            self._timer = threading.Timer(self.seconds, self._give_up)
            self._timer.daemon = True  # a process that stopped in time exits without waiting for it
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
