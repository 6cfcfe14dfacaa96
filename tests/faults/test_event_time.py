"""Event time in the real world: device clocks that run fast, bursts that outrun the workers, a
worker stopped for longer than the grace, and a killed worker's replay.

An event is late only if it *arrived* (was first stored by NATS) after its window's end + grace;
its ``occurred_at`` only places it in a window. So none of these may dead-letter an on-time event
or change a final value. Each case runs the real deployment: nats-server, ``python -m app web``
and metric workers as subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.msg import Msg

from bridges.server import NatsServer
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact, rfc3339
from testkit.oracle import expected_results
from testkit.pipeline import dead_letters, metrics_values, start_metric_worker, values_match
from testkit.streams import nats_client, stream_count
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 5, 2
#: posts of 1,000 events in the burst: about 5 s of ingest here, longer with the workers stalled
BURST_ROUNDS = 40


async def post_all(url: str, events: list[dict[str, Any]], *, batch: int = 1000) -> None:
    """POST ``events`` in batches as fast as ingest takes them; every batch must be accepted."""
    async with aiohttp.ClientSession() as session:
        for start in range(0, len(events), batch):
            async with session.post(f"{url}/v1/events", json={"events": events[start : start + batch]}) as response:
                assert response.status == 202, await response.text()


@contextlib.asynccontextmanager
async def finals_seen(nats_url: str) -> AsyncIterator[dict[str, float]]:
    """KV key -> when its final value was written (seen on ``$KV.metrics.>``, within ms)."""
    seen: dict[str, float] = {}

    async def record(msg: Msg) -> None:
        if msg.data and json.loads(msg.data).get("final") is True:
            seen.setdefault(msg.subject.removeprefix("$KV.metrics."), time.time())

    async with nats_client(nats_url) as client:
        subscription = await client.subscribe("$KV.metrics.>", cb=record)
        try:
            yield seen
        finally:
            await subscription.unsubscribe()


def worst_delay(seen: dict[str, float], *, window: int, grace: int) -> float:
    """How long after its end + grace the slowest window's final was written."""
    return max(at - (int(key.rsplit(".", 1)[1]) + window + grace) for key, at in seen.items())


async def late_letters(nats_url: str) -> Counter[str]:
    return Counter(subject for subject, _, _ in await dead_letters(nats_url) if subject.startswith("deadletter.late."))


@pytest.mark.timeout(300)
async def test_devices_whose_clocks_run_fast_delay_no_one(nats_server: NatsServer, tmp_path: Path) -> None:
    # Eight partitions, 48 accurate students over HTTP, and two devices over NATS whose clocks
    # run 40 s and 299 s fast (the contract accepts up to 300 s). Their events land in windows
    # that lie ahead; nobody else's event may be judged late because of them.
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE, PARTITIONS="8",
                    METRICS_UPDATE_SECONDS="0.5")
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        await Deployment(pool, nats_server.url, per_agent=1).start()
        fast: dict[float, list[dict[str, Any]]] = {40.0: [], 299.0: []}
        live = LiveEvents(seed=12, students=48, run="accurate")
        async with nats_client(nats_server.url) as client, HttpTraffic(url, live, batch=20, interval=0.1) as traffic:
            deadline = time.time() + 12
            n = 0
            while time.time() < deadline:
                for ahead, sent in fast.items():
                    n += 1
                    event = {**live.make(time.time() + ahead), "event_id": f"fast{ahead:.0f}-{n}",
                             "student_id": f"fast{ahead:.0f}"}
                    await client.publish(f"events.{event['type']}.{event['student_id']}", json.dumps(event).encode())
                    sent.append(event)
                await asyncio.sleep(0.2)  # each device's own pace
            await client.flush()
        accurate = traffic.accepted
        assert len(accurate) > 1000 and all(fast.values())

        # Every accurate window and every window of the 40 s device closes, exactly as the oracle
        # says, with nothing late.
        compared = await assert_results_exact(nats_server.url, [*accurate, *fast[40.0]], window=WINDOW,
                                              timeout=120, open_windows_allowed=True)
        assert not await late_letters(nats_server.url)
        print(f"FAULTS fast-clocks events={len(accurate) + sum(map(len, fast.values()))} "
              f"fast_events={sum(map(len, fast.values()))} finals={len(compared)} late=0")
        # The 299 s device's windows are still open: each already holds its events (the value so
        # far, written every 0.5 s), in the windows of their own occurred_at.
        expected_ahead = expected_results(fast[299.0], window_seconds=WINDOW)

        async def counted_ahead() -> dict[str, Any] | None:
            values = await metrics_values(nats_server.url)
            return values if all(k in values for k in expected_ahead) else None

        values = await poll_until(counted_ahead, timeout=30, interval=0.5, what="the fast device's open windows")
        for key, want in expected_ahead.items():
            assert values[key]["final"] is False
            assert values_match({**values[key], "final": True}, want), (values[key], want)


@pytest.mark.timeout(300)
async def test_a_burst_that_outruns_the_workers_and_a_stopped_worker_lose_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # Short windows and grace, so that windows fall due while the workers are behind; a session
    # timeout longer than the stall below, so that it is a stall and not a failover.
    window, grace = 2, 1
    env = fault_env(nats_server.url, tmp_path / "data", window=window, grace=grace, SESSION_TIMEOUT="20")
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        deployment = await Deployment(pool, nats_server.url, per_agent=1).start()
        workers = [w for ws in deployment.workers.values() for w in ws]
        live = LiveEvents(seed=5, students=64, run="burst")
        # Events stamped as they are made, posted as fast as ingest takes them, while every worker
        # stalls for six graces (as in a long GC pause or CPU starvation) and then works the
        # backlog off: however fast this machine, the workers fall more than 3 graces behind. A
        # window falls due within one window length (2 graces) of the stall's start, so its final
        # waits at least 6 - 2 = 4 graces; with five, that margin was 3 graces exactly, and a
        # run whose stall began just as a window fell due measured 2.9.
        burst: list[dict[str, Any]] = []
        sent_at = time.time()
        async with finals_seen(nats_server.url) as seen:
            async with aiohttp.ClientSession() as session:
                for round_ in range(BURST_ROUNDS):
                    if round_ == BURST_ROUNDS // 4:
                        stalled_at = time.monotonic()
                        for worker in workers:
                            worker.signal(signal.SIGSTOP)
                    batch = live.batch(1000, time.time())
                    async with session.post(f"{url}/v1/events", json={"events": batch}) as response:
                        assert response.status == 202
                    burst.extend(batch)
            await asyncio.sleep(max(0.0, stalled_at + 6 * grace - time.monotonic()))  # the stall itself
            for worker in workers:
                worker.signal(signal.SIGCONT)
            posted_in = time.time() - sent_at
            compared = await assert_results_exact(nats_server.url, burst, window=window, timeout=240)
        behind = worst_delay(seen, window=window, grace=grace)
        print(f"FAULTS burst events={len(burst)} posted_in={posted_in:.1f}s finals={len(compared)} "
              f"slowest_final_after_end_plus_grace={behind:.1f}s grace={grace}s late=0")
        assert behind > 3 * grace, "the workers never fell behind: the test proves nothing"
        assert not await late_letters(nats_server.url)

        # A worker stopped for ten times the grace while live traffic goes on, then started again.
        engagement = deployment.workers["engagement"][0]
        async with HttpTraffic(url, live, batch=20, interval=0.1) as traffic:
            await engagement.terminate()
            await asyncio.sleep(10 * grace)  # the outage itself: real time has to pass
            deployment.replace("engagement")
            await traffic.wait_accepted(len(traffic.accepted) + 200)
        compared = await assert_results_exact(nats_server.url, [*burst, *traffic.accepted], window=window, timeout=120)
        assert not await late_letters(nats_server.url)
        print(f"FAULTS stopped-worker events={len(burst) + len(traffic.accepted)} finals={len(compared)} "
              f"outage={10 * grace}s late=0")


_REPLAY_METRIC = '''
"""The engagement metric under another name, so that two apps compute it side by side."""
from dataclasses import replace

from agents.engagement import define as engagement
from agents.windowed import windowed_metric


def define(window_seconds, grace_seconds):
    return replace(engagement(window_seconds, grace_seconds), name="{name}")


build = windowed_metric(define)
'''


@pytest.mark.timeout(300)
async def test_a_killed_worker_replays_to_the_same_finals_and_dead_letters(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # Two apps compute the same metric from the same stored events: "steady" is left alone,
    # "killed" is killed mid-burst and started again, so it replays from its last flush. Both
    # must reach the same finals and dead-letter the same late events.
    for name in ("steady", "killed"):
        (tmp_path / f"{name}.py").write_text(_REPLAY_METRIC.format(name=name))
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        steady = start_metric_worker(pool, str(tmp_path / "steady.py"), name="steady")
        killed = start_metric_worker(pool, str(tmp_path / "killed.py"), name="killed")
        for worker in (steady, killed):
            await worker.wait_ready(timeout=90)
        live = LiveEvents(seed=8, students=40, run="replay")
        on_time: list[dict[str, Any]] = []
        late: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            for round_ in range(24):
                batch = live.batch(997, time.time())
                # A few events of a window that closed long before they arrive: late in any run.
                stale = [{**e, "event_id": f"stale-{round_}-{i}", "occurred_at": rfc3339(time.time() - 30)}
                         for i, e in enumerate(live.batch(3, time.time()))]
                async with session.post(f"{url}/v1/events", json={"events": [*batch, *stale]}) as response:
                    assert response.status == 202
                on_time.extend(batch)
                late.extend(stale)
                if round_ == 12:
                    # Mid-burst, once it has flushed state with windows open: what it processed
                    # since its last flush is lost, and its successor replays it from there.
                    await poll_until(lambda: _flushed(nats_server.url, "killed"), timeout=60,
                                     what="the killed app to flush open windows")
                    await killed.kill()
                    killed = start_metric_worker(pool, str(tmp_path / "killed.py"), name="killed-again")
        expected = expected_results(on_time, window_seconds=WINDOW)
        want = {key.split(".", 1)[1]: value for key, value in expected.items() if value["metric"] == "engagement"}

        async def both_final() -> dict[str, dict[str, Any]] | None:
            values = await metrics_values(nats_server.url)
            finals = {name: {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{name}.")}
                      for name in ("steady", "killed")}
            return finals if all(f.keys() >= want.keys() for f in finals.values()) else None

        finals = await poll_until(both_final, timeout=240, interval=1.0, what="both apps' finals")
        for name in ("steady", "killed"):
            assert finals[name].keys() == want.keys(), name
            for key, value in finals[name].items():
                assert values_match({**value, "metric": "engagement"}, want[key]), (name, key, value, want[key])

        async def letters() -> dict[str, list[str]] | None:
            found: dict[str, list[str]] = {"steady": [], "killed": []}
            for subject, _, payload in await dead_letters(nats_server.url):
                name = subject.rsplit(".", 1)[1]
                if subject.startswith("deadletter.late.") and name in found:
                    found[name].append(json.loads(payload)["event_id"])
            return found if all(len(ids) >= len(late) for ids in found.values()) else None

        found = await poll_until(letters, timeout=60, interval=1.0, what="both apps' late dead letters")
        assert sorted(found["steady"]) == sorted(found["killed"]) == sorted(e["event_id"] for e in late)
        # The successor resumed from a flush with open windows: it replayed, not started afresh.
        assert re.search(r"resumes at offset \d+ with [1-9]\d* open windows", killed.log()), killed.log()[-2000:]
        assert killed.alive()
        print(f"FAULTS replay events={len(on_time) + len(late)} finals_per_app={len(want)} late_per_app={len(late)}")


async def _flushed(nats_url: str, app: str) -> bool:
    """Whether the app has flushed open windows: a final of it is stored (so it has been
    processing for more than a window), and its changelog holds more than one record per
    partition (a marker alone is a flush of nothing)."""
    async with nats_client(nats_url) as client:
        counts = [await stream_count(client, f"FAUST_{app}-{app}-windows-changelog_{p}") for p in range(4)]
    finals = [k for k in await metrics_values(nats_url) if k.startswith(f"{app}.")]
    return bool(finals) and sum(counts) > 2 * len(counts)
