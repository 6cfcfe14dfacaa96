"""Fault (b): the NATS server killed (SIGKILL) and restarted on the same port and file store while
live events arrive over HTTP. The web process answers 503 while NATS is down and nothing it
acknowledged with 202 is lost; the web process and the workers reconnect on their own and every
final window equals the oracle of the acknowledged events.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# The grace outlasts the outage: the batch refused while NATS is down is sent again after it,
# stamped with the time it was made, and must still be on time.
WINDOW, GRACE = 5, 12
#: per restart, how many 503 answers to wait for before bringing NATS back: a blip, and an
#: outage longer than the workers' session timeout (their leases run out meanwhile)
OUTAGES = (1, 20)


async def readyz(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def ready(url: str) -> bool:
    return await readyz(url) == 200


async def test_nats_killed_and_restarted_mid_stream_loses_no_acknowledged_event(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        web, url = await start_web_process(pool)
        deployment = await Deployment(pool, nats_server.url).start()
        async with HttpTraffic(url, LiveEvents(seed=21, run="restart")) as traffic:
            for refusals in OUTAGES:
                await traffic.wait_accepted(len(traffic.accepted) + 300)
                await nats_server.kill()
                refused = traffic.statuses["503"]
                await poll_until(
                    lambda target=refused + refusals: traffic.statuses["503"] >= target, timeout=30,
                    what="ingest to answer 503 while NATS is down",
                )
                assert await readyz(url) == 503
                await nats_server.restart(graceful=False)
                await poll_until(lambda: ready(url), timeout=30, what="the web process to be ready again")
                await traffic.wait_accepted(len(traffic.accepted) + 100)
            await traffic.wait_accepted(len(traffic.accepted) + 200)
        values = await assert_results_exact(nats_server.url, traffic.accepted, window=WINDOW)
        assert all(w.alive() for w in pool), [w.name for w in pool if not w.alive()]
        logs = {w.name: w.log() for w in pool}
    assert "NATS reconnected" in logs["web"]
    for agent, workers in deployment.workers.items():
        assert any("NATS reconnected" in logs[w.name] for w in workers), f"no {agent} worker reconnected"
    rewritten = [name for name, log in logs.items() if "already final with another value" in log]
    assert not rewritten, f"a window was computed twice with different values in {rewritten}"
    print(
        f"FAULTS nats-sigkill restarts={len(OUTAGES)} events={len(traffic.accepted)} windows={len(values)} "
        f"answers={dict(traffic.statuses)} "
        f"memberships_lost={sum(log.count('lost its membership') for log in logs.values())}"
    )
