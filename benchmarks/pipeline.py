"""The full pipeline: events in JetStream -> the three metric workers over nats:// -> results in KV.

The workers are started on an empty events topic and measured only once every group has
settled (each agent's partitions split between its processes), so start-up and the first
rebalances are not in the figure. Then the dataset is published (pipelined, as ingest does) and
the clock runs from the first publish until the last expected result is in KV; each agent's own
time is when its last result landed. Every event is read by each agent, so "events/s" is events
of the dataset per second, each through all three metrics — the same unit as the faust-core row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client

from benchmarks.dataset import Dataset, ResultWatch, declare_topic, publish, verify_sample
from benchmarks.workers import metric_env, spawn_metric_workers, wait_owned, wait_ready
from contract.names import EVENTS_TOPIC
from testkit.pipeline import METRIC_AGENTS
from testkit.workers import Workers

__all__ = ["PipelineResult", "run_pipeline"]


@dataclass(frozen=True)
class PipelineResult:
    processes: int
    #: first publish -> last result of any agent
    seconds: float
    #: first publish -> every event acknowledged by JetStream
    publish_seconds: float
    #: agent -> first publish -> its last result
    per_agent: dict[str, float]


async def run_pipeline(
    url: str, client: Client, dataset: Dataset, *, processes: int, base_dir: Path, session_timeout: float,
    timeout: float = 300.0,
) -> PipelineResult:
    """Run ``processes`` workers per agent over ``dataset`` (see the module docstring)."""
    await declare_topic(client, dataset.partitions)
    env = metric_env(
        url, base_dir / "data", partitions=dataset.partitions, window=dataset.window, grace=dataset.grace,
        session_timeout=session_timeout,
    )
    with Workers(base_dir / "logs", env) as pool:
        workers = spawn_metric_workers(pool, METRIC_AGENTS, processes)
        await wait_ready(workers)
        for agent in METRIC_AGENTS:
            await wait_owned(url, agent, EVENTS_TOPIC, dataset.partitions, processes)
        async with ResultWatch(client) as watch:
            started = time.time()
            publish_seconds = await publish(client, dataset.messages())
            await watch.wait_for(dataset.expected.keys(), timeout=timeout)
            per_agent = {agent: watch.last(agent) - started for agent in METRIC_AGENTS}
    await verify_sample(client, dataset.expected)
    return PipelineResult(processes, max(per_agent.values()), publish_seconds, per_agent)
