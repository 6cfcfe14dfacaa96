"""A three-node NATS cluster: every stream and bucket the project creates is replicated three
times, and with one node SIGKILLed mid-stream processing continues and results stay exact.

The workers and the web process get all three URLs (``NATS_URL`` comma-separated) and
``NATS_REPLICAS=3``; the killed node is the one leading the first events partition's stream,
so at least one stream (and likely the JetStream meta leader) must fail over.
"""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from testkit.cluster import NatsCluster
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.workers import Workers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(300)]

# A failover (a stream leader elected anew, publishes retried) can hold acknowledgements back
# for several seconds; events stamped before it must still be on time when they are stored.
WINDOW, GRACE = 5, 20


async def stream_replicas(url: str) -> dict[str, int]:
    """Every stream (KV buckets included) -> its number of replicas."""
    client = await nats.connect(url)
    try:
        return {info.config.name: info.config.num_replicas for info in await client.jetstream().streams_info()}
    finally:
        await client.close()


async def leader_of(url: str, stream: str) -> str:
    client = await nats.connect(url)
    try:
        info = await client.jetstream().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader
        return info.cluster.leader
    finally:
        await client.close()


async def test_replicated_three_times_and_a_killed_node_changes_no_result(tmp_path: Path) -> None:
    async with NatsCluster(tmp_path / "cluster") as cluster:
        env = fault_env(cluster.nats_url, tmp_path / "data", window=WINDOW, grace=GRACE, NATS_REPLICAS="3")
        with Workers(tmp_path / "logs", env) as pool:
            _, url = await start_web_process(pool)
            await Deployment(pool, cluster.nats_url, per_agent=1).start()
            async with HttpTraffic(url, LiveEvents(seed=66, run="cluster")) as traffic:
                await traffic.wait_accepted(400)
                replicas = await stream_replicas(cluster.urls[0])
                victim_name = await leader_of(cluster.urls[0], "FAUST_events_0")
                victim = next(node for node in cluster.nodes if node.name == victim_name)
                await victim.kill()
                survivors = [node for node in cluster.nodes if node is not victim]
                await cluster.wait_jetstream(survivors)
                await traffic.wait_accepted(len(traffic.accepted) + 600, timeout=120)
            values = await assert_results_exact(survivors[0].url, traffic.accepted, window=WINDOW, timeout=120)
            logs = {w.name: w.log() for w in pool}
            assert all(w.alive() for w in pool), [w.name for w in pool if not w.alive()]
    # topics (events and each agent's changelog and assignor topics), the offsets, groups and
    # topics buckets, the metrics bucket, the INGEST, RESULTS and DEADLETTER streams
    expected = {"FAUST_INGEST", "FAUST_RESULTS", "FAUST_DEADLETTER", "KV_metrics", "KV_faust_offsets",
                "KV_faust_groups", "KV_faust_topics", "FAUST_events_0"}
    assert expected <= replicas.keys() and any("changelog" in name for name in replicas), sorted(replicas)
    assert set(replicas.values()) == {3}, {name: n for name, n in replicas.items() if n != 3}
    rewritten = [name for name, log in logs.items() if "already final with another value" in log]
    assert not rewritten, rewritten
    # One worker per agent and none paused: nobody can have fenced anybody off, so a refused
    # flush or commit would be the cluster refusing a worker's own writes.
    fenced = [name for name, log in logs.items() if "fenced off" in log]
    assert not fenced, fenced
    print(
        f"FAULTS cluster-node-sigkill kills=1 streams={len(replicas)} events={len(traffic.accepted)} "
        f"windows={len(values)} answers={dict(traffic.statuses)}"
    )
