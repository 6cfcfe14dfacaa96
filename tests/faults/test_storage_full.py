"""Fault: JetStream's store fills up while live events arrive over HTTP, then an operator gives
it more room (``max_file_store`` raised, configuration reloaded; nothing restarted).

While it is full, ingest answers 503 at once with ``Retry-After`` and a body that says the
storage is full, ``/readyz`` answers 503 with the reason, and the workers stay up (the same
processes), keeping what they could not store. Once there is room, ingest and finals resume on
their own, and every event answered 202 is counted exactly once.

The store first holds the byte caps the streams reserve (three state buckets of 64 MiB, 1 MiB
per changelog partition here), then the test fills the rest with a stream of its own
(:mod:`testkit.storage`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.limits import MIB
from bridges.server import NatsServer
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.storage import fill_store, raise_store_limit, store_config
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# The grace outlasts the outage: a batch refused while the store is full is sent again after,
# stamped with the time it was made, and must still be on time.
WINDOW, GRACE = 5, 14
STORE = 256 * MIB
#: how long the store stays full: longer than the session timeout (the leases lapse) and than a
#: window plus the closer's lag (windows fall due meanwhile)
OUTAGE = 8.0


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def post(url: str, event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any], float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(f"{url}/v1/events", json=event) as response:
        return response.status, dict(response.headers), await response.json(), time.monotonic() - started


async def test_a_full_store_is_a_state_ingest_and_finals_resume_when_there_is_room(tmp_path: Path) -> None:
    config = store_config(tmp_path / "nats.conf", STORE)
    async with NatsServer(tmp_path / "nats", config_file=config) as server:
        env = fault_env(server.url, tmp_path / "data", window=WINDOW, grace=GRACE, CHANGELOG_MAX_BYTES="1M")
        with Workers(tmp_path / "logs", env) as pool:
            web, url = await start_web_process(pool)
            deployment = await Deployment(pool, server.url, per_agent=1).start()
            pids = {w.name: w.pid for w in pool}
            async with HttpTraffic(url, LiveEvents(seed=13, run="full")) as traffic:
                await traffic.wait_accepted(300)
                filled = await fill_store(server.url, STORE)
                full_at = time.monotonic()
                refused = traffic.statuses["503"]
                await poll_until(lambda: traffic.statuses["503"] > refused, timeout=10, what="ingest to answer 503")
                status, headers, body, took = await post(url, LiveEvents(run="probe").make(time.time()))
                ready, readiness = await get(f"{url}/readyz")
                accepted_while_full = len(traffic.accepted)
                await poll_until(lambda: time.monotonic() - full_at >= OUTAGE, timeout=OUTAGE + 1, interval=0.2,
                                 what="the outage to last")
                still_ready, _ = await get(f"{url}/readyz")
                refusals = traffic.statuses["503"] - refused
                alive_while_full = [w.name for w in pool if w.alive()]
                await raise_store_limit(server, 2 * STORE)
                room_at = time.monotonic()
                await poll_until(lambda: _ready(url), timeout=30, what="the web process ready again")
                ready_after = time.monotonic() - room_at
                await traffic.wait_accepted(len(traffic.accepted) + 300)
                accepted_after = time.monotonic() - room_at
            values = await assert_results_exact(server.url, traffic.accepted, window=WINDOW)
            logs = {w.name: w.log() for w in pool}
            assert {w.name: w.pid for w in pool} == pids, "a process was restarted"
            assert all(w.alive() for w in pool), [w.name for w in pool if not w.alive()]
    assert (status, ready, still_ready) == (503, 503, 503)
    assert took < 2.0, f"a refused request took {took:.1f}s"
    assert int(headers["Retry-After"]) > 0
    assert body["errors"][0]["message"].startswith("storage full:")
    assert readiness["reason"].startswith("storage full: the JetStream store of the server is full")
    assert sorted(alive_while_full) == sorted(pids)
    assert len(traffic.accepted) - accepted_while_full >= 300
    assert "ingest: storage full:" in logs["web"] and "ingest: storage has room again" in logs["web"]
    for workers in deployment.workers.values():
        for worker in workers:
            log = logs[worker.name]
            assert "storage full: the JetStream store of the server is full" in log, f"{worker.name} never said so"
            assert "Traceback" not in log, f"{worker.name} logged a traceback:\n{log[-3000:]}"
            assert log.count("lost its membership") <= 1, f"{worker.name} dropped out more than once"
    rewritten = [name for name, log in logs.items() if "already final with another value" in log]
    assert not rewritten, f"a window was computed twice with different values in {rewritten}"
    print(
        f"FAULTS storage-full outage={OUTAGE:.0f}s filler={filled // MIB}MiB events={len(traffic.accepted)} "
        f"windows={len(values)} answers={dict(traffic.statuses)} refusals={refusals} "
        f"refused_in={took * 1000:.0f}ms ready_after={ready_after:.1f}s accepted_300_after={accepted_after:.1f}s "
        f"memberships_lost={sum(log.count('lost its membership') for log in logs.values())} "
        f"workers_resumed={sum('storage has room again' in logs[w.name] for ws in deployment.workers.values() for w in ws)}"
    )


async def _ready(url: str) -> bool:
    status, _ = await get(f"{url}/readyz")
    return status == 200
