"""The local lease deadline: until when this member may act as the owner of its partitions.

The server drops a member's key ``ttl`` seconds after it *stored* the last renewal, and the
member's partitions move once the key is gone. The member cannot see that moment, but it can
bound it from below on its own clock:

1. Before sending a renewal (or the join, or a record update: every write of the member key
   renews its TTL), read the clock: ``sent_at``. The server stores the write after that, so the
   key lives at least until ``sent_at + ttl``.
2. When the write is acknowledged, the lease is valid until ``sent_at + ttl - margin``. A renewal
   that fails, or whose answer is lost, extends nothing: the deadline only moves on proof.
3. ``margin`` (a third of the TTL unless told otherwise: 2 s at the default 6 s TTL, 1 s at the
   tests' 3 s) covers what happens between a check of :meth:`LeaseDeadline.valid` and the server
   storing the write it allowed: the send, the network, the server's queue, and a pause of this
   process right after the check. Renewals go out every third of the TTL, so a healthy member
   always holds at least a third of it; a renewal slower than ``ttl/3`` leaves a short gap in
   which writes wait, which is the safe side.
4. Losing the lease (a compare-and-set refused: it expired or the leader evicted the member),
   leaving the group or stopping ends the **term**. A term is one membership: the next join
   starts a new one. A write accepted in one term is never sent in another: the state it was
   computed from belonged to the old membership, and partitions were recovered since.

The clock is ``CLOCK_BOOTTIME`` where there is one: unlike ``CLOCK_MONOTONIC`` it keeps counting
while the host is suspended, and the server's TTL keeps running then too. Both keep counting
while the process is stopped (SIGSTOP, a GC pause, a VM frozen by its host counts on the host).

Renewals run on the lease keeper's thread and writers check from the event loop, so everything
here is thread-safe; waiters are woken on their own loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

__all__ = ["LeaseClock", "LeaseDeadline", "UNFENCED", "lease_time"]

#: the margin as a fraction of the TTL, unless one is given (see step 3 above)
MARGIN_FRACTION: Final = 1 / 3


def lease_time() -> float:
    """Seconds on a clock that never steps back and counts time the host was suspended."""
    return time.clock_gettime(_CLOCK)


_CLOCK: Final = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


class LeaseClock(Protocol):
    """What a writer that must be fenced sees of the member lease (read-only)."""

    def term(self) -> int:
        """The membership the lease belongs to (increasing); 0 while none is held."""
        ...

    def valid(self, term: int | None = None) -> bool:
        """Whether the lease is valid now (and belongs to ``term``, when given)."""
        ...

    def valid_until(self) -> float | None:
        """The deadline on :meth:`now`'s clock; None while no lease is held."""
        ...

    def now(self) -> float: ...

    async def wait_valid(self, timeout: float, term: int | None = None) -> bool:
        """Wait until :meth:`valid` (for ``term``) holds: True then, False after ``timeout``.

        False at once when ``term`` is over: no renewal can make it valid again.
        """
        ...


class LeaseDeadline:
    """The member lease's deadline, moved by the keeper (steps 1-4 of the module docstring).

    Args:
        ttl: the lease's TTL (the session timeout).
        margin: seconds taken off the deadline; a third of ``ttl`` when None.
        clock: the clock ``sent_at`` values are read from (a fake one in tests).
    """

    def __init__(self, ttl: float, *, margin: float | None = None, clock: Callable[[], float] = lease_time) -> None:
        margin = ttl * MARGIN_FRACTION if margin is None else margin
        if not 0 <= margin < ttl:
            raise ValueError(f"the lease margin must be in [0, ttl={ttl}), got {margin}")
        self.ttl = ttl
        self.margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._term = 0
        self._held = False
        self._deadline = float("-inf")
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- the keeper's side (any thread) ---------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def begin(self, sent_at: float) -> int:
        """A join written at ``sent_at`` was acknowledged: a new term starts; returns it."""
        with self._lock:
            self._term += 1
            self._held = True
            self._deadline = sent_at + self.ttl - self.margin
            term = self._term
        self._wake()
        return term

    def renewed(self, sent_at: float) -> None:
        """A renewal written at ``sent_at`` was acknowledged: extend the current term.

        Renewals of one key are written one at a time, so a later acknowledgement never
        carries an earlier ``sent_at``; the deadline never moves back all the same.
        """
        with self._lock:
            if not self._held:
                return  # the term ended meanwhile: a late answer revives nothing
            self._deadline = max(self._deadline, sent_at + self.ttl - self.margin)
        self._wake()

    def end(self) -> None:
        """The lease was lost or given up: the term is over. Idempotent."""
        with self._lock:
            if not self._held:
                return
            self._held = False
            self._deadline = float("-inf")
        self._wake()

    # -- the writers' side (the LeaseClock protocol) --------------------------------------

    def term(self) -> int:
        with self._lock:
            return self._term if self._held else 0

    def valid(self, term: int | None = None) -> bool:
        now = self._clock()
        with self._lock:
            return self._valid_locked(now, term)

    def valid_until(self) -> float | None:
        with self._lock:
            return self._deadline if self._held else None

    async def wait_valid(self, timeout: float, term: int | None = None) -> bool:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while True:
            now = self._clock()
            with self._lock:
                if self._valid_locked(now, term):
                    return True
                if term is not None and (not self._held or term != self._term):
                    return False
                # Nothing to do but wait for the keeper: only a renewal (or a new term) can
                # make the lease valid again, and each one wakes this exactly once.
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, waiter))
            remaining = give_up - loop.time()
            try:
                if remaining <= 0:
                    return False
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                return False
            finally:
                with self._lock:
                    if (loop, waiter) in self._waiters:
                        self._waiters.remove((loop, waiter))

    def _valid_locked(self, now: float, term: int | None) -> bool:
        return self._held and (term is None or term == self._term) and now < self._deadline

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, waiter)
            except RuntimeError:
                pass  # that loop is closed: nobody waits there any more

    def __repr__(self) -> str:
        until = self.valid_until()
        left = "none held" if until is None else f"{until - self._clock():+.3f}s left"
        return f"LeaseDeadline(term={self._term}, {left}, ttl={self.ttl}, margin={self.margin})"


class _Unfenced:
    """The lease of a process outside any consumer group (a client-only app): always valid.

    Nothing else owns what such a process writes, so there is nobody to fence it from.
    """

    def term(self) -> int:
        return 1

    def valid(self, term: int | None = None) -> bool:
        return term is None or term == 1

    def valid_until(self) -> float | None:
        return float("inf")

    def now(self) -> float:
        return lease_time()

    async def wait_valid(self, timeout: float, term: int | None = None) -> bool:
        return self.valid(term)


UNFENCED: Final[LeaseClock] = _Unfenced()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
