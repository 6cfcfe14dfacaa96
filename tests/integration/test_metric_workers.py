"""The three metric workers end to end: events in, final windows in KV, equal to the oracle."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from bridges.server import NatsServer
from tests.oracle import expected_results, generate_sessions
from tests.support.pipeline import METRIC_AGENTS, ingest, metrics_values, start_metric_worker, values_match
from tests.support.workers import Workers, poll_until

pytestmark = pytest.mark.integration

WINDOW, GRACE, PARTITIONS = 5, 2, 4


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer):
    env = {
        "NATS_URL": nats_server.url,
        "METRICS_WINDOW_SECONDS": str(WINDOW),
        "METRICS_GRACE_SECONDS": str(GRACE),
        "PARTITIONS": str(PARTITIONS),
        "SESSION_TIMEOUT": "3",
        "DATA_DIR": str(tmp_path / "data"),
    }
    with Workers(tmp_path / "logs", env) as pool:
        yield pool


async def test_every_final_window_equals_the_oracle(nats_server: NatsServer, workers: Workers) -> None:
    for agent in METRIC_AGENTS:
        start_metric_worker(workers, agent)
    for worker in workers:
        await worker.wait_for_log(r"Worker ready", timeout=60)
    now = time.time()
    events = generate_sessions(seed=7, students=20, minutes=3, start_epoch=int(now) - 240)
    await ingest(nats_server.url, events, partitions=PARTITIONS, now=now)
    expected = expected_results(events, window_seconds=WINDOW)
    assert len(events) > 250 and len(expected) > 200

    async def all_written() -> dict | None:
        values = await metrics_values(nats_server.url)
        return values if values.keys() >= expected.keys() else None

    values = await poll_until(all_written, timeout=60, interval=0.5, what="every final window in KV")
    assert values.keys() == expected.keys()
    wrong = {k: (values[k], expected[k]) for k in expected if not values_match(values[k], expected[k])}
    assert not wrong, wrong


async def test_workers_killed_at_random_points_still_write_every_window_exactly_once(
    nats_server: NatsServer, workers: Workers
) -> None:
    import random

    rng = random.Random(11)
    pool = {agent: [start_metric_worker(workers, agent, name=f"{agent}-{i}") for i in (1, 2)] for agent in METRIC_AGENTS}
    for worker in workers:
        await worker.wait_for_log(r"Worker ready", timeout=60)
    now = time.time()
    events = generate_sessions(seed=3, students=24, minutes=4, start_epoch=int(now) - 300)
    expected = expected_results(events, window_seconds=WINDOW)
    batches = [events[i : i + len(events) // 12 + 1] for i in range(0, len(events), len(events) // 12 + 1)]
    restarts = 0
    for batch in batches:
        await ingest(nats_server.url, batch, partitions=PARTITIONS, now=time.time())
        # The stream's own pace: the workers flush their state once a second, and kills must
        # land between flushes, half-way through them, and before any.
        await asyncio.sleep(rng.uniform(0.2, 2.5))
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
