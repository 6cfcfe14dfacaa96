"""Throughput projected to N cores and P partitions, from the CPU the full pipeline's run used.

The full-pipeline runs measure, besides their time, the CPU seconds each agent's workers and the
nats-server used from the first worker processing to the last result (``/proc``). Per event of
the dataset that is what one event costs each agent (``w``, CPU seconds) and the server (``s``);
``1 / w`` is the rate one process of that agent does with a core of its own. On N cores shared by
the workers and the server, and P partitions per topic:

- **cores**: every event costs ``sum(w) + s`` CPU seconds, so at most ``N / (sum(w) + s)``
  events/s, whatever the process count (as long as each agent has processes enough to use its
  share; the projection gives each agent the fewest that do, at most P);
- **partitions**: an agent runs at most P processes that hold a partition, each on at most one
  core: ``P / w`` for the costliest agent;
- **nats-server**: its own share, ``s``. With the workers on other machines and the server on
  the N cores alone, it caps at ``N / s`` (reported beside: on shared cores it is part of the
  first bound).

One process per agent is costed from the run with 1 process per agent, more from the run with 2
(splitting the partitions costs something: smaller fetches, more commits). The projection
assumes the CPU per event stays what it was here, on 2 cores shared with other engineers' work;
it leaves out what these runs cannot show, such as a JetStream stream's own limit (each
partition is one stream) or the network between machines.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.report import Row

__all__ = ["Costs", "Projection", "project", "projection_rows"]

#: the shapes projected: (cores, partitions)
SHAPES: tuple[tuple[int, int], ...] = ((2, 4), (4, 4), (8, 4), (8, 16), (16, 16), (32, 16))


@dataclass(frozen=True)
class Costs:
    """CPU seconds per event of the dataset: each agent's workers, and the nats-server."""

    agents: Mapping[str, float]
    server: float

    @classmethod
    def measured(cls, cpu_by_agent: Mapping[str, float], server_cpu: float, events: int) -> Costs:
        """Per event, from CPU seconds read in clock ticks: an agent's below one tick (a short run,
        the quick scale's) counts as one, so that no agent costs nothing."""
        tick = 1 / os.sysconf("SC_CLK_TCK")
        return cls({agent: max(cpu, tick) / events for agent, cpu in cpu_by_agent.items()}, server_cpu / events)


@dataclass(frozen=True)
class Projection:
    cores: int
    partitions: int
    #: processes of each agent
    processes: Mapping[str, int]
    #: what they cost (as one process per agent, or as more)
    costs: Costs
    #: events/s
    rate: float
    #: what caps ``rate``: "cores" or "partitions"
    capped_by: str
    #: the bound of the cores, of the partitions, and of the server alone on the cores
    cores_bound: float
    partitions_bound: float
    server_bound: float


def project(one: Costs, more: Costs, cores: int, partitions: int) -> Projection:
    """The rate on ``cores`` cores with ``partitions`` partitions (see the module docstring);
    ``one`` costs one process per agent, ``more`` two or more."""
    if cores < 1 or partitions < 1:
        raise ValueError(f"cores and partitions must be at least 1, not {cores} and {partitions}")
    costs = one
    processes = {agent: 1 for agent in costs.agents}
    while True:
        cores_bound = cores / (sum(costs.agents.values()) + costs.server)
        # Fewest processes of each agent that take its share of cores_bound, each at most a core.
        wanted = {
            agent: min(partitions, max(1, math.ceil(cores_bound * w - 1e-9))) for agent, w in costs.agents.items()
        }
        if costs is more or all(n == 1 for n in wanted.values()):
            processes = wanted
            break
        costs = more  # more than one process somewhere: cost them as such, and look again
    partitions_bound = min(partitions / w for w in costs.agents.values())
    rate = min(cores_bound, partitions_bound)
    return Projection(
        cores, partitions, processes, costs, rate,
        "partitions" if partitions_bound < cores_bound else "cores",
        cores_bound, partitions_bound, cores / costs.server if costs.server > 0 else math.inf,
    )


def projection_rows(
    one: Costs, more: Costs, measured_rate: float, shapes: Sequence[tuple[int, int]] = SHAPES
) -> list[Row]:
    """A row per shape, its rate as a ratio to the measured pipeline with 1 process per agent."""
    rows = []
    for cores, partitions in shapes:
        p = project(one, more, cores, partitions)
        processes = ", ".join(f"{agent} {n}" for agent, n in p.processes.items())
        per_process = ", ".join(f"{agent} {1 / w / 1000:.1f}k" for agent, w in p.costs.agents.items())
        share = p.costs.server / (sum(p.costs.agents.values()) + p.costs.server)
        if p.capped_by == "partitions":
            cap = f"capped by the {partitions} partitions (cores would allow {p.cores_bound:,.0f})"
        else:
            cap = f"capped by the cores (partitions would allow {p.partitions_bound:,.0f})"
        rows.append(Row(
            f"projection-{cores}c-{partitions}p", "projection",
            f"{cores} cores, {partitions} partitions", p.rate, "events/s", p.rate / measured_rate, "pipeline-1",
            f"{cap}; processes per agent: {processes}; events/s per busy core of each agent: {per_process}; nats-server "
            f"{share:.0%} of the CPU, alone on the {cores} cores it would cap at {p.server_bound:,.0f}",
        ))
    return rows
