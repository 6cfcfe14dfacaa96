"""A count of slots for the doors that hold memory or a connection per client: HTTP ingest
requests and the dashboard's event streams.

A client beyond the limit is refused at once (the caller answers 503 with ``Retry-After``)
rather than queued: a queue of waiting uploads would hold their connections and buffers, which
is what the limit is there to bound. A leaf module of ``app``: the web process and the dashboard
both use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Capacity"]


class Capacity:
    """At most ``limit`` holders at once."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a capacity holds at least 1, not {limit}")
        self._limit = limit
        self._held = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """A slot for the ``with`` block: True when one was free (given back at the end), False
        when every slot is held (nothing to give back)."""
        if self._held >= self._limit:
            yield False
            return
        self._held += 1
        try:
            yield True
        finally:
            self._held -= 1
