"""The dashboard's live feed: one watch of the ``metrics`` bucket per web process, fanned out.

A single task follows every key of the bucket (current values first, then each new one) into a
:class:`~app.dashboard.state.ClassState` and a :class:`~app.dashboard.generic.state.KeyedMetrics`
(each value parsed once, its window shared by both), and tells every open page what changed that
the page wants: a student (a :class:`str`) or a key of a metric version (a
:class:`~app.dashboard.generic.state.KeyChange`). Pages subscribe with a bounded queue: a page
that falls more than ``maxsize`` changes behind is dropped (its stream ends, the browser
reconnects and starts again from a fresh snapshot) rather than holding the watch back or growing
without bound.

The watch is retried with backoff when it fails (NATS restarting, say): the dashboard is a
view, and must not die with a connection. Re-watching replays current values, which the state
takes idempotently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Final

from app.dashboard.generic.state import METRIC_KEYS, KeyChange, KeyedMetrics
from app.dashboard.state import HISTORY, STUDENTS, ClassState, Window
from bridges.public.metrics_reader import MetricsReader

__all__ = ["Change", "LiveClass", "Subscription", "SubscriptionEnded", "students_only"]

log = logging.getLogger(__name__)

_END: Final = object()
_BACKOFF_CAP: Final = 10.0


class SubscriptionEnded(Exception):
    """The feed closed, or this subscriber fell too far behind."""


#: what changed: a student's windows (its id), or a metric version's key
Change = str | KeyChange


def students_only(change: Change) -> bool:
    """What the classroom overview wants: students."""
    return isinstance(change, str)


class Subscription:
    """What changed that one page wants (students whose windows changed or who were forgotten,
    keys of a metric version)."""

    def __init__(self, maxsize: int, wants: Callable[[Change], bool] = students_only) -> None:
        # One slot more than maxsize, for the end marker: ending never blocks or fails.
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize + 1)
        self._maxsize = maxsize
        self._ended = False
        #: the changes offered to this page; the others are not queued, so a page of a quiet
        #: metric never falls behind the busy ones
        self.wants = wants

    @property
    def ended(self) -> bool:
        return self._ended

    def offer(self, change: Change) -> None:
        if self._ended or not self.wants(change):
            return
        if self._queue.qsize() >= self._maxsize:
            log.info("a dashboard page fell %d changes behind; ending its stream", self._maxsize)
            self.end()
            return
        self._queue.put_nowait(change)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    async def changes(self, timeout: float) -> set[Change]:
        """What changed since the last call, waiting up to ``timeout`` for the first
        (an empty set when none came: time for a keep-alive). Raises :class:`SubscriptionEnded`."""
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return set()
        items = [first]
        while not self._queue.empty():  # everything already queued: one burst, one render each
            items.append(self._queue.get_nowait())
        if _END in items:
            raise SubscriptionEnded
        return {item for item in items if isinstance(item, str | KeyChange)}


class LiveClass:
    """The class's state, kept current by a watch; an async context manager.

    Args:
        reader: a started metrics reader (not owned).
        history: windows kept per student and series.
        students: students kept (``DASHBOARD_STUDENTS``); the quietest are forgotten first.
        metric_keys: keys kept per metric version (``DASHBOARD_METRIC_KEYS``), likewise.
    """

    def __init__(
        self, reader: MetricsReader, *, history: int = HISTORY, students: int = STUDENTS, metric_keys: int = METRIC_KEYS
    ) -> None:
        self._reader = reader
        self.state = ClassState(history, limit=students)
        #: every metric version's keys, for the generic pages
        self.metrics = KeyedMetrics(history, limit=metric_keys)
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: values taken from the watch so far (how far the feed got, for logs and tests)
        self.applied = 0

    async def start(self) -> LiveClass:
        if self._task is not None or self._closed:
            raise RuntimeError("a live class is started once")
        self._task = asyncio.create_task(self._follow(), name="dashboard-watch")
        return self

    async def close(self) -> None:
        """End every subscription and stop the watch. Idempotent."""
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.end()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> LiveClass:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @contextlib.contextmanager
    def subscribe(
        self, maxsize: int = 1024, *, wants: Callable[[Change], bool] = students_only
    ) -> Iterator[Subscription]:
        subscription = Subscription(maxsize, wants)
        if self._closed:
            subscription.end()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    async def _follow(self) -> None:
        delay = 0.5
        while not self._closed:
            try:
                async with self._reader.watch(include_existing=True) as entries:
                    delay = 0.5
                    async for entry in entries:
                        self.applied += 1
                        window = Window.final(entry.key, entry.window_start, entry.value)
                        if window is None:
                            continue
                        changed: list[Change] = [
                            *self.state.put(entry.metric, entry.student_id, entry.game_id, window),
                            *self.metrics.put(entry.metric, entry.key_parts, window),
                        ]
                        for change in changed:
                            for subscription in list(self._subscribers):
                                subscription.offer(change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - nats-py's errors too: retried, never fatal
                log.warning("the dashboard's watch of the metrics bucket failed (%s); retrying in %.1fs", exc, delay)
            if self._closed or self._reader.closed:
                return
            await asyncio.sleep(delay)  # backoff between attempts, not a poll: close() cancels it
            delay = min(delay * 2, _BACKOFF_CAP)
