"""Live traffic for end-to-end and fault-injection tests: valid events stamped with the wall
clock, sent over HTTP while faults happen, and the record of which ones the web process
acknowledged; and :func:`relive`, which moves a generated timeline onto the wall clock.

Why the wall clock: an event is late when it *arrives* (is first stored by NATS) after its
window's end + grace, so events stamped "now" and sent at once are on time unless ingest itself
holds them up for longer than the grace period; a worker that stalls, dies or falls behind
changes nothing about them — which is exactly what a fault test wants to check. The oracle (:func:`testkit.oracle.expected_results`) is
computed from :attr:`HttpTraffic.accepted` only: a batch counts once it was answered 202.
A batch answered 503 (or not answered) is sent again, unchanged, until it is accepted: only
then is it known what was stored (a 503 may follow a partial store, and the retry's
duplicates make the store whole).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiohttp

from testkit.oracle import expected_results
from testkit.pipeline import METRIC_AGENTS, dead_letters, metrics_values, values_match
from testkit.workers import poll_until

__all__ = ["HttpTraffic", "LiveEvents", "assert_results_exact", "pace", "relive", "rfc3339"]


def rfc3339(epoch: float) -> str:
    """``epoch`` as RFC 3339 in UTC with milliseconds (rounded down, never into the future)."""
    moment = datetime.fromtimestamp(int(epoch * 1000) / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def relive(events: Sequence[dict[str, Any]], *, start: float, speed: float) -> list[dict[str, Any]]:
    """``events`` (time-ordered, e.g. from :func:`testkit.oracle.generate_sessions`) moved onto the
    wall clock: the first at ``start``, the others ``speed`` times closer together than they were.

    Each keeps its UTC offset (a student's device keeps its time zone); times keep milliseconds
    and are rounded down. Send each no earlier than its time (:func:`pace`) and it arrives on
    time, as live traffic does.
    """
    if not events:
        return []
    origin = _parse(events[0]["occurred_at"])
    moved = []
    for event in events:
        moment = _parse(event["occurred_at"])
        epoch = start + (moment - origin).total_seconds() / speed
        local = datetime.fromtimestamp(int(epoch * 1000) / 1000, UTC).astimezone(moment.tzinfo)
        text = local.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        moved.append({**event, "occurred_at": text})
    return moved


async def pace(event: dict[str, Any]) -> None:
    """Wait until the wall clock has reached ``event``'s time: live producers send no earlier."""
    delay = _parse(event["occurred_at"]).timestamp() - time.time()
    if delay > 0:
        await asyncio.sleep(delay)  # the clock itself is what is waited for: nothing to poll


def _parse(occurred_at: str) -> datetime:
    return datetime.fromisoformat(occurred_at.upper())


@dataclass
class LiveEvents:
    """Valid events of ``students`` students, each stamped with the time it is made.

    Every metric gets input: heartbeats, sessions and answers (engagement), levels started,
    completed and failed (progression), games finished (outcomes). Same seed, same sequence of
    kinds; ids are unique within a run (``run`` keeps runs of one test apart).
    """

    seed: int = 1
    students: int = 12
    run: str = "live"
    _rng: random.Random = field(init=False, repr=False)
    _count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def make(self, now: float) -> dict[str, Any]:
        rng = self._rng
        self._count += 1
        student = f"s{rng.randrange(self.students):03d}"
        base = {"event_id": f"{self.run}-{self._count:07d}", "student_id": student, "occurred_at": rfc3339(now)}
        roll = rng.random()
        game = {"game_id": rng.choice(["g-math", "g-words"])}
        level = rng.randrange(6)
        if roll < 0.2:
            return {**base, "type": "engagement", "name": "heartbeat", "data": {"seconds": rng.choice([15, 30, 12.5])}}
        if roll < 0.25:
            return {**base, "type": "engagement", "name": "session_started"}
        if roll < 0.5:
            return {**base, "type": "interaction", "name": "answer_submitted", "data": {"correct": rng.random() < 0.6}}
        if roll < 0.55:
            return {**base, "type": "interaction", "name": "hint_opened"}
        if roll < 0.68:
            return {**base, "type": "game", "name": "level_started", "data": {"level": level}, **game}
        if roll < 0.8:
            data: dict[str, Any] = {"level": level, "score": rng.randrange(10, 200), "duration_ms": rng.randrange(4_000, 40_000)}
            return {**base, "type": "game", "name": "level_completed", "data": data, **game}
        if roll < 0.88:
            return {**base, "type": "game", "name": "level_failed", "data": {"level": level, "duration_ms": 5_000}, **game}
        outcome = rng.choice(["win", "win", "loss", "abandon"])
        data = {"outcome": outcome, "score": rng.randrange(0, 500), "duration_ms": rng.randrange(10_000, 90_000)}
        return {**base, "type": "game", "name": "game_finished", "data": data, **game}

    def batch(self, size: int, now: float) -> list[dict[str, Any]]:
        return [self.make(now) for _ in range(size)]


@dataclass
class HttpTraffic:
    """Posts a batch of live events to ``POST /v1/events`` every ``interval`` seconds.

    Each batch is retried, unchanged, until it is answered 202; only then are its events added
    to :attr:`accepted`. :attr:`statuses` counts every answer (``"error"``: no answer at all).
    """

    url: str
    events: LiveEvents
    batch: int = 20
    interval: float = 0.1
    token: str | None = None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    async def _run(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping:
                batch = self.events.batch(self.batch, time.time())
                body = json.dumps({"events": batch}).encode()
                while True:
                    status = await self._post(session, body, headers)
                    self.statuses[status] += 1
                    if status == "202":
                        break
                    if status not in ("503", "error"):
                        raise AssertionError(f"live traffic refused with {status}")
                    await asyncio.sleep(0.2)
                self.accepted.extend(batch)
                await asyncio.sleep(self.interval)

    async def _post(self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> str:
        try:
            async with session.post(f"{self.url}/v1/events", data=body, headers=headers) as response:
                await response.read()
                return str(response.status)
        except (aiohttp.ClientError, TimeoutError):
            return "error"

    async def wait_accepted(self, count: int, *, timeout: float = 60.0) -> None:
        """Until at least ``count`` events are acknowledged."""
        await poll_until(
            lambda: len(self.accepted) >= count, timeout=timeout, interval=0.1,
            what=f"{count} events acknowledged (have {len(self.accepted)}, answers {dict(self.statuses)})",
        )

    async def stop(self) -> None:
        """Finish the batch in hand (it is retried until accepted), then stop."""
        self._stopping = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 120)

    async def __aenter__(self) -> HttpTraffic:
        self._task = asyncio.create_task(self._run(), name="http-traffic")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None and not self._task.done():
            if exc_type is None:
                await self.stop()
            else:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)


async def assert_results_exact(
    nats_url: str,
    accepted: list[dict[str, Any]],
    *,
    window: int,
    metrics: Collection[str] = METRIC_AGENTS,
    timeout: float = 90.0,
    open_windows_allowed: bool = False,
) -> dict[str, dict[str, Any]]:
    """Wait until every window the oracle expects is final in KV, then require KV == oracle.

    Nothing missing (an event lost), nothing extra, every value equal (an event counted twice or
    not at all). Only the keys of ``metrics`` are compared (a test may run some agents only).
    On a mismatch the dead letters are shown: a fault that stalled events past the grace period
    shows up there as late events. ``open_windows_allowed``: keys still holding a value so far
    (``"final": false``, with ``METRICS_UPDATE_SECONDS``) of windows not in ``accepted`` are not
    "unexpected" (events dated ahead keep windows open for minutes).
    """
    expected = {
        k: v for k, v in expected_results(accepted, window_seconds=window).items() if v["metric"] in metrics
    }

    async def current() -> dict[str, dict[str, Any]]:
        return {k: v for k, v in (await metrics_values(nats_url)).items() if k.split(".", 1)[0] in metrics}

    def final_keys(values: dict[str, dict[str, Any]]) -> set[str]:
        # With METRICS_UPDATE_SECONDS a key holds "final": false while its window is open.
        return {k for k, v in values.items() if v.get("final") is True}

    async def complete() -> dict[str, dict[str, Any]] | None:
        values = await current()
        return values if final_keys(values) >= expected.keys() else None

    try:
        values = await poll_until(complete, timeout=timeout, interval=0.5, what="every expected window final in KV")
    except AssertionError:
        values = await current()
        missing = sorted(expected.keys() - values.keys())
        provisional = sorted((expected.keys() & values.keys()) - final_keys(values))
        raise AssertionError(
            f"{len(missing)} of {len(expected)} windows missing, e.g. {missing[:5]}; "
            f"{len(provisional)} not final, e.g. {provisional[:5]}; "
            f"dead letters: {await _dead_letter_summary(nats_url)}"
        ) from None
    extra = sorted((final_keys(values) if open_windows_allowed else values.keys()) - expected.keys())
    wrong = {k: (values[k], expected[k]) for k in expected if not values_match(values[k], expected[k])}
    if extra or wrong:
        counts = {k: f"{got['events']} events, expected {want['events']}" for k, (got, want) in wrong.items()}
        raise AssertionError(
            f"{len(extra)} unexpected windows {extra[:5]}, {len(wrong)} wrong values {counts}, e.g. "
            f"{dict(list(wrong.items())[:1])}; dead letters: {await _dead_letter_summary(nats_url)}"
        )
    return values


async def _dead_letter_summary(nats_url: str) -> dict[str, int]:
    return dict(collections.Counter(subject for subject, _, _ in await dead_letters(nats_url)))
