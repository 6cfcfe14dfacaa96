"""Fault (c): a metric worker paused (SIGSTOP) past its lease while live events arrive. Its
partitions move to the other worker; when it resumes (SIGCONT) it is fenced — its late commits
and changelog writes are refused — and rejoins under a new member id; results stay exact.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bridges.server import NatsServer
from tests.support.faults import SESSION_TIMEOUT, Deployment, fault_env, start_web_process
from tests.support.group import read_group
from tests.support.live import HttpTraffic, LiveEvents, assert_results_exact
from tests.support.workers import Workers

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 5, 5
AGENT = "engagement"


async def test_a_worker_paused_past_its_lease_is_fenced_and_rejoins_with_exact_results(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        deployment = await Deployment(pool, nats_server.url).start()
        await deployment.wait_balanced(AGENT)
        paused, other = deployment.workers[AGENT]
        before = await read_group(nats_server.url, AGENT)
        (old_id,) = [m for m, r in before.members.items() if r.pid == paused.pid]
        async with HttpTraffic(url, LiveEvents(seed=33, run="pause")) as traffic:
            await traffic.wait_accepted(300)
            paused.signal(signal.SIGSTOP)
            try:
                # The other worker takes every partition once the lease ran out, and processes
                # (and commits) past what the paused one held.
                await deployment.wait_balanced(AGENT, only=[other], timeout=SESSION_TIMEOUT + 30)
                await traffic.wait_accepted(len(traffic.accepted) + 300)
            finally:
                paused.signal(signal.SIGCONT)
            await paused.wait_for_log(r"lost its membership", timeout=30)
            await deployment.wait_balanced(AGENT, timeout=SESSION_TIMEOUT + 30)
            await traffic.wait_accepted(len(traffic.accepted) + 300)
        values = await assert_results_exact(nats_server.url, traffic.accepted, window=WINDOW)
        after = await read_group(nats_server.url, AGENT)
    new_ids = [m for m, r in after.members.items() if r.pid == paused.pid]
    assert new_ids and old_id not in new_ids, "the paused worker came back under its old member id"
    log = paused.log()
    assert "already final with another value" not in log + other.log()
    print(
        f"FAULTS worker-sigstop pauses=1 events={len(traffic.accepted)} windows={len(values)} "
        f"refused_late_writes={log.count('fenced')}"
    )
