"""The three metric workers end to end: events in, final windows in KV, equal to the oracle.

Lateness is decided by arrival (when NATS first stored an event), so a backlog stored while no
worker ran is counted in full, live events survive workers killed at random points, and only an
event that arrives after its window's end + grace is late.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from bridges.server import NatsServer
from contract.deadletters import REASON_HEADER
from testkit.live import pace, relive
from testkit.oracle import event_epoch, expected_results, generate_sessions
from testkit.pipeline import (
    METRIC_AGENTS,
    dead_letters,
    ingest,
    metric_env,
    metrics_values,
    start_metric_worker,
    values_match,
)
from testkit.producer import faust_producer
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

WINDOW, GRACE, PARTITIONS = 5, 2, 4


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer):
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE, partitions=PARTITIONS)
    with Workers(tmp_path / "logs", env) as pool:
        yield pool


async def test_a_backlog_stored_before_the_workers_start_is_counted_in_full(
    nats_server: NatsServer, workers: Workers
) -> None:
    # Three minutes of events, each stored half a second after it occurred, while no worker ran:
    # every one arrived in time for its window, however long ago that window ended.
    now = time.time()
    events = generate_sessions(seed=7, students=20, minutes=3, start_epoch=int(now) - 240)
    arrivals = [event_epoch(e) + 0.5 for e in events]
    await ingest(nats_server.url, events, partitions=PARTITIONS, now=now, arrivals=arrivals)
    for agent in METRIC_AGENTS:
        start_metric_worker(workers, agent)
    expected = expected_results(events, window_seconds=WINDOW)
    assert len(events) > 250 and len(expected) > 200

    async def all_written() -> dict | None:
        values = await metrics_values(nats_server.url)
        return values if values.keys() >= expected.keys() else None

    values = await poll_until(all_written, timeout=90, interval=0.5, what="every final window in KV")
    assert values.keys() == expected.keys()
    wrong = {k: (values[k], expected[k]) for k in expected if not values_match(values[k], expected[k])}
    assert not wrong, wrong
    assert not await dead_letters(nats_server.url), "an event of the backlog was dead-lettered"


async def test_workers_killed_at_random_points_still_write_every_window_exactly_once(
    nats_server: NatsServer, workers: Workers
) -> None:
    import random

    rng = random.Random(11)
    pool = {agent: [start_metric_worker(workers, agent, name=f"{agent}-{i}") for i in (1, 2)] for agent in METRIC_AGENTS}
    for worker in workers:
        await worker.wait_ready(timeout=60)
    # Four minutes of sessions, live and twelve times faster: about 20 s of traffic, each event
    # sent when it occurs. A restart takes longer than the grace, which must change nothing.
    events = relive(
        generate_sessions(seed=3, students=24, minutes=4, start_epoch=int(time.time())),
        start=time.time() + 1, speed=12,
    )
    expected = expected_results(events, window_seconds=WINDOW)
    batches = [events[i : i + len(events) // 12 + 1] for i in range(0, len(events), len(events) // 12 + 1)]
    restarts = 0
    for batch in batches:
        for event in batch:
            await pace(event)
        await ingest(nats_server.url, batch, partitions=PARTITIONS, now=time.time())
        # Kills must land between flushes (once a second), half-way through them, and before any.
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        agent = rng.choice(METRIC_AGENTS)
        victim = rng.choice([w for w in pool[agent] if w.alive()])
        await victim.kill()
        restarts += 1
        replacement = start_metric_worker(workers, agent, name=f"{agent}-r{restarts}")
        pool[agent] = [w for w in pool[agent] if w.alive()] + [replacement]

    async def all_written() -> dict | None:
        values = await metrics_values(nats_server.url)
        return values if values.keys() >= expected.keys() else None

    values = await poll_until(all_written, timeout=120, interval=0.5, what="every final window in KV")
    assert values.keys() == expected.keys()
    # Dead letters first: an event this test sends late (its own process starved of CPU on a
    # loaded machine) is rightly late, and then its window rightly differs from the oracle.
    letters = await dead_letters(nats_server.url)
    reasons = sorted({headers.get(REASON_HEADER, "?")[:80] for _, headers, _ in letters})
    assert not letters, f"{len(letters)} events dead-lettered: {reasons}"
    wrong = {k: (values[k], expected[k]) for k in expected if not values_match(values[k], expected[k])}
    assert not wrong, wrong
    rewritten = [w.name for w in workers if "already final with another value" in w.log()]
    assert not rewritten, f"a window was computed twice with different values in {rewritten}"
    # The kills must have hit live state: some partition was resumed from a flushed marker
    # with open windows in it (otherwise this test would only show a restart from scratch).
    resumed = [
        line for w in workers for line in w.log().splitlines()
        if re.search(r"resumes at offset \d+ with [1-9]\d* open windows", line)
    ]
    assert resumed, "no worker resumed mid-stream from restored state"


def _event(event_id: str, student: str, at: float, **extra: object) -> dict:
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    return {"event_id": event_id, "student_id": student, "type": "interaction", "name": "answer",
            "occurred_at": moment, "data": {"correct": True}, **extra}


async def test_an_idle_stream_closes_its_last_window_on_time(nats_server: NatsServer, workers: Workers) -> None:
    worker = start_metric_worker(workers, "engagement")
    await worker.wait_ready(timeout=60)
    now = time.time()
    window_end = (int(now) // WINDOW + 1) * WINDOW
    await ingest(nats_server.url, [_event("idle-1", "s1", now)], partitions=PARTITIONS, now=now)
    key = f"engagement.s1.{window_end - WINDOW}"
    due = window_end + GRACE  # nothing else arrives: only the wall clock can close the window

    async def written() -> float | None:
        return time.time() if key in await metrics_values(nats_server.url) else None

    seen_at = await poll_until(written, timeout=due - time.time() + 5, interval=0.05, what=f"{key} in KV")
    latency = seen_at - due
    print(f"idle window closed {latency:+.3f}s after end + grace")
    assert -0.1 <= latency <= 1.0, f"final result {latency:+.2f}s after end + grace"


async def test_late_and_unreadable_events_are_dead_lettered_with_a_reason_and_the_rest_counts(
    nats_server: NatsServer, workers: Workers
) -> None:
    worker = start_metric_worker(workers, "engagement")
    await worker.wait_ready(timeout=60)
    now = time.time()
    base = int(now) // WINDOW * WINDOW  # the window open now
    early = [_event(f"e{i}", "s1", now) for i in range(3)]
    await ingest(nats_server.url, early, partitions=PARTITIONS, now=now)
    first = f"engagement.s1.{base}"
    await poll_until(lambda: _has(nats_server.url, first), timeout=30, what="the first window's result")
    # The window closed at its end + grace: one more event for it arrives after that, so is late.
    late = _event("late-1", "s1", base + 1)
    await ingest(nats_server.url, [late], partitions=PARTITIONS, now=time.time())
    # Unreadable events straight into the topic (HTTP/NATS ingest would have refused them).
    async with faust_producer(nats_server.url, partitions=PARTITIONS) as send:
        await send("events", json.dumps({**_event("no-time", "s1", now), "occurred_at": None}).encode(), key=b"s1")
        await send("events", json.dumps({**_event("bad-time", "s1", now), "occurred_at": "yesterday"}).encode(), key=b"s1")
        await send("events", b"{not json", key=b"s1")
    after_at = time.time()
    after = _event("after", "s2", after_at)
    await ingest(nats_server.url, [after], partitions=PARTITIONS, now=after_at)

    letters = await poll_until(
        lambda: _letters_when(nats_server.url, 4), timeout=30, what="four dead letters"
    )
    by_subject = {}
    for subject, headers, payload in letters:
        by_subject.setdefault(subject, []).append((headers["Reason"], payload))
    assert [json.loads(p)["event_id"] for _, p in by_subject["deadletter.late.engagement"]] == ["late-1"]
    assert "late" in by_subject["deadletter.late.engagement"][0][0]
    reasons = [r for r, _ in by_subject["deadletter.invalid.engagement"]]
    assert len(reasons) == 3 and all("occurred_at" in r for r in reasons[:2]), reasons
    assert "JSON" in reasons[2]
    # The first window kept its three events; the worker kept going and counted the next one.
    assert (await metrics_values(nats_server.url))[first]["events"] == 3
    await poll_until(
        lambda: _has(nats_server.url, f"engagement.s2.{int(after_at) // WINDOW * WINDOW}"),
        timeout=30, what="the event after the bad ones to be counted",
    )
    assert worker.alive()


async def _has(url: str, key: str) -> bool:
    return key in await metrics_values(url)


async def _letters_when(url: str, count: int) -> list | None:
    letters = await dead_letters(url)
    return letters if len(letters) >= count else None
