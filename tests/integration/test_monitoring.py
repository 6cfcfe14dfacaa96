"""/metrics, /healthz and /readyz of real processes: a web process on its PORT and progression
workers on their METRICS_PORT.

Every page is parsed with prometheus_client's own parser. The counters move with traffic; a
worker is ready once its partitions are assigned and recovered, and again after a second worker
took half of them; and the lag of a partition rises while its only worker is stopped and falls
once it runs again. A stopped (SIGSTOP) worker cannot answer anything, its /metrics included,
so the lag is read where it is meant to be read then: from the web process, which reads every
group's lag from NATS (the worker's own /metrics says the same once it runs again).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.faults import start_web_process
from testkit.live import LiveEvents
from testkit.pipeline import metric_env, start_metric_worker
from testkit.prometheus import Samples, scrape
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

AGENT, WINDOW, GRACE, PARTITIONS = "progression", 2, 1, 4


@pytest.fixture
def pool(tmp_path: Path, nats_server: NatsServer):
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE, partitions=PARTITIONS)
    with Workers(tmp_path / "logs", env) as workers:
        yield workers


async def post(url: str, body: Any) -> int:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/events", json=body) as response:
        return response.status


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, http.get(url) as response:
        return response.status, await response.json()


def increase(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


def lag(samples: Samples, group: str = AGENT) -> float:
    return samples.total("learning_streams_consumer_lag", group=group, topic="events")


async def test_metrics_parse_and_move_with_traffic_and_readiness_follows_recovery(pool: Workers) -> None:
    _, web = await start_web_process(pool)
    worker = start_metric_worker(pool, AGENT, name=f"{AGENT}-1")
    url = await worker.metrics_url()
    # Before its partitions are assigned and recovered the worker is alive but not ready.
    seen = []

    async def ready() -> bool:
        status, body = await get(f"{url}/readyz")
        seen.append((status, body))
        return status == 200

    await poll_until(ready, timeout=90, interval=0.1, what="the worker's /readyz")
    assert seen[0] == (503, {"status": "unavailable", "reason": "starting"}), seen[:3]
    assert seen[-1] == (200, {"status": "ok", "partitions": list(range(PARTITIONS))})
    assert await get(f"{url}/healthz") == (200, {"status": "ok"})
    assert (await get(f"{web}/readyz"))[0] == 200 and (await get(f"{web}/healthz"))[0] == 200

    before_web, before_worker = await scrape(web), await scrape(url)
    live = LiveEvents(seed=14, students=6, run="metrics")
    events = [live.make(time.time()) for _ in range(40)]
    assert await post(web, {"events": events}) == 202
    assert await post(web, {"events": events}) == 202  # the same request again: duplicates
    assert await post(web, {"events": [{"event_id": "x"}]}) == 422

    async def moved() -> tuple[Samples, Samples] | None:
        after_web, after_worker = await scrape(web), await scrape(url)
        added = sum(
            after_worker.total("learning_streams_window_events_total", outcome=o)
            for o in ("counted", "ignored", "duplicate")
        )
        closed = after_worker.total("learning_streams_windows_closed_total", metric=AGENT)
        return (after_web, after_worker) if added >= 40 and closed >= 1 else None

    after_web, after_worker = await poll_until(moved, timeout=60, interval=0.5, what="the counters to move")
    # Final results count as written when a flush records them: at the next commit, which more
    # events bring (an idle stream's are counted at the next event, or when the worker stops).
    assert await post(web, {"events": [live.make(time.time()) for _ in range(5)]}) == 202

    async def written() -> bool:
        return (await scrape(url)).total("learning_streams_finals_total", result="written") >= 1

    await poll_until(written, timeout=30, interval=0.5, what="a final result counted as written")
    ingested = "learning_streams_ingest_events_total"
    assert increase(after_web, before_web, ingested, path="http", result="accepted") == 40
    assert increase(after_web, before_web, ingested, path="http", result="duplicate") == 40
    assert increase(after_web, before_web, "learning_streams_ingest_refused_total", path="http", reason="invalid") == 1
    assert increase(after_worker, before_worker, "faust_messages_received_total") >= 1
    assert after_worker.total("learning_streams_windows_closed_total", metric=AGENT) >= 1
    assert after_worker.total("learning_streams_window_close_latency_seconds_count", metric=AGENT) >= 1
    assert after_worker.total("learning_streams_rebalances_total") >= 1
    assert after_worker.get_value("learning_streams_partitions_active", metric=AGENT) == PARTITIONS
    # The web process reads the storage of every stream, the events topic's partitions among them.
    assert after_web.total("learning_streams_stream_bytes", stream="FAUST_events_0") > 0

    # A second worker of the group takes half of the partitions: both are ready again once those
    # are recovered, and between them they hold each partition once.
    second = start_metric_worker(pool, AGENT, name=f"{AGENT}-2")
    await second.wait_ready(timeout=90)

    async def split() -> list[int] | None:
        answers = [await get(f"{await w.metrics_url()}/readyz") for w in (worker, second)]
        held = [body.get("partitions", []) for _, body in answers]
        both = all(status == 200 for status, _ in answers) and all(held)
        return sorted(held[0] + held[1]) if both else None

    assert await poll_until(split, timeout=60, interval=0.2, what="both workers ready") == list(range(PARTITIONS))


async def test_lag_rises_while_the_worker_is_stopped_and_falls_after(pool: Workers) -> None:
    _, web = await start_web_process(pool)
    worker = start_metric_worker(pool, AGENT)
    await worker.wait_ready()
    live = LiveEvents(seed=15, students=8, run="lag")

    async def caught_up() -> bool:
        return lag(await scrape(web)) == 0 and lag(await scrape(await worker.metrics_url())) == 0

    assert await post(web, {"events": [live.make(time.time()) for _ in range(20)]}) == 202
    await poll_until(caught_up, timeout=30, interval=0.3, what="the worker to catch up")

    worker.signal(signal.SIGSTOP)
    try:
        readings = []
        for _ in range(3):
            # Each request's events go to several partitions, one batch record per partition.
            assert await post(web, {"events": [live.make(time.time()) for _ in range(20)]}) == 202
            readings.append(await poll_until(
                lambda: _lag_above(web, readings[-1] if readings else 0), timeout=10, interval=0.2,
                what="the lag to rise",
            ))
        assert readings == sorted(readings) and readings[0] > 0, readings
        assert await worker.probe("/healthz", timeout=1.0) == 0, "a stopped worker answered"
    finally:
        worker.signal(signal.SIGCONT)
    # It runs again: its lease ran out meanwhile, so it rejoins, recovers and works the backlog off.
    await poll_until(caught_up, timeout=60, interval=0.3, what="the lag to fall back to 0")
    print(f"lag while stopped (records): {readings}")


async def _lag_above(web: str, floor: float) -> float | None:
    found = lag(await scrape(web))
    return found if found > floor else None
