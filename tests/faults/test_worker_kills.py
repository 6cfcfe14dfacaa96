"""Fault (a): metric workers killed with SIGKILL at random moments, again and again, while live
events keep arriving over HTTP; every final window still equals the oracle of the accepted events.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bridges.server import NatsServer
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.pipeline import METRIC_AGENTS
from testkit.workers import Workers

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 5, 5
KILLS = 6


async def test_workers_killed_at_random_moments_lose_and_double_count_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    rng = random.Random(808)
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        deployment = await Deployment(pool, nats_server.url).start()
        async with HttpTraffic(url, LiveEvents(seed=808, run="kills")) as traffic:
            for _ in range(KILLS):
                # A random moment, measured in events: mid-batch, mid-flush, right after a restart.
                await traffic.wait_accepted(len(traffic.accepted) + rng.randrange(20, 400))
                agent = rng.choice(METRIC_AGENTS)
                victim = rng.choice(deployment.alive(agent))
                await victim.kill()
                deployment.replace(agent)
            await traffic.wait_accepted(len(traffic.accepted) + 200)
        values = await assert_results_exact(nats_server.url, traffic.accepted, window=WINDOW)
        logs = {w.name: w.log() for w in pool}
    rewritten = [name for name, log in logs.items() if "already final with another value" in log]
    assert not rewritten, f"a window was computed twice with different values in {rewritten}"
    resumed = [n for n, log in logs.items() if re.search(r"resumes at offset \d+ with [1-9]\d* open windows", log)]
    assert resumed, "no worker resumed mid-stream from restored state: the kills hit nothing"
    print(
        f"FAULTS worker-sigkill kills={KILLS} events={len(traffic.accepted)} windows={len(values)} "
        f"answers={dict(traffic.statuses)}"
    )
