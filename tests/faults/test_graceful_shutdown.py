"""Graceful shutdown of a metric worker: SIGTERM while events are in flight.

The worker stops fetching, finishes what it holds, flushes its state and commits, then leaves,
within a deadline. Shown four ways: it exits 0 in time; it gives up every partition at the offset
its last flush covers (nothing processed was left unflushed); the committed offset of every
partition equals that flush's source offset; and its successor resumes every partition exactly
there — it re-processes nothing — with the results still equal to the oracle.
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from bridges.naming import Naming
from bridges.server import NatsServer
from testkit.faults import PARTITIONS, Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.pipeline import start_metric_worker
from testkit.workers import Workers

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 5, 5
AGENT = "engagement"
#: what the test allows a drain to take (faust's own shutdown is bounded by its timeouts)
DRAIN_DEADLINE = 30.0


@dataclass(frozen=True)
class Stopped:
    """One partition as the worker left it: its committed offset and its last state flush."""

    committed: int | None
    committed_at: float
    flushed: int | None
    flushed_at: float


async def stopped_state(url: str) -> dict[int, Stopped]:
    """Partition -> the committed offset of the events topic and the last flush's ``src``."""
    naming = Naming()
    changelog = f"{AGENT}-{AGENT}-windows-changelog"
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        out: dict[int, Stopped] = {}
        for p in range(PARTITIONS):
            bucket = naming.offsets_bucket
            commit = await js.get_last_msg(f"KV_{bucket}", f"$KV.{bucket}.{naming.offset_key(AGENT, 'events', p)}")
            marker = await js.get_last_msg(
                naming.stream(changelog, p), naming.key_subject(changelog, p, f"{AGENT}.marker".encode())
            )
            assert commit.time is not None and marker.time is not None
            out[p] = Stopped(
                json.loads(commit.data or b"{}").get("offset"), commit.time.timestamp(),
                json.loads(marker.data or b"{}").get("src"), marker.time.timestamp(),
            )
        return out
    finally:
        await client.close()


async def test_sigterm_drains_and_commits_so_the_successor_reprocesses_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        deployment = await Deployment(pool, nats_server.url, agents=(AGENT,), per_agent=1).start()
        (worker,) = deployment.workers[AGENT]
        async with HttpTraffic(url, LiveEvents(seed=55, run="drain")) as traffic:
            await traffic.wait_accepted(600)
            signalled_at = time.time()
            worker.signal(signal.SIGTERM)  # events keep arriving: some are fetched, not processed
            assert await worker.wait_exit(DRAIN_DEADLINE) == 0, worker.log()[-3000:]
            drained_in = time.time() - signalled_at
            stopped = await stopped_state(nats_server.url)
            successor = start_metric_worker(pool, AGENT, name=f"{AGENT}-successor")
            await successor.wait_ready(timeout=90)
            await traffic.wait_accepted(len(traffic.accepted) + 300)
        values = await assert_results_exact(nats_server.url, traffic.accepted, window=WINDOW, metrics=(AGENT,))
    # The shutdown itself flushed and committed every partition (traffic reached them all), and
    # the two agree: no event was processed without being committed.
    assert all(s.committed_at >= signalled_at and s.flushed_at >= signalled_at for s in stopped.values()), stopped
    assert all(s.committed is not None and s.committed == s.flushed for s in stopped.values()), stopped
    # The worker let go of each partition with nothing processed beyond its last flush.
    given_up = {
        int(p): (applied, flushed)
        for p, applied, flushed in re.findall(r"partition (\d+) stopped at offset (\w+), flushed up to (\w+)", worker.log())
    }
    assert given_up.keys() == stopped.keys(), given_up
    assert all(applied == flushed == str(stopped[p].committed) for p, (applied, flushed) in given_up.items()), given_up
    resumed = {
        int(p): int(offset)
        for p, offset in re.findall(r"partition (\d+) resumes at offset (\d+)", successor.log())
    }
    assert resumed == {p: s.committed for p, s in stopped.items()}
    assert "Traceback" not in worker.log()
    print(f"FAULTS worker-sigterm drained_in={drained_in:.1f}s events={len(traffic.accepted)} windows={len(values)}")
