"""A fake wall clock for tests: time moves only when a test moves it."""

from __future__ import annotations

#: 2024-05-01T10:00:00Z, a realistic epoch time, so float precision is tested where it matters.
T0 = 1_714_557_600.0


class FakeClock:
    """``now`` is float epoch seconds, like ``time.time()``; ``advance`` moves it and returns it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
