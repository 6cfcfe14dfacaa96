"""The deployment a fault-injection test runs: a web process and metric workers as subprocesses.

Small windows and a short session timeout keep each case to tens of seconds; every process is a
real ``python -m app ...`` started through :class:`~testkit.workers.Workers`, so the test
kills (or pauses) exactly the processes it started.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testkit.group import read_group
from testkit.pipeline import METRIC_AGENTS, start_metric_worker
from testkit.workers import WorkerProcess, Workers, poll_until

__all__ = ["Deployment", "PARTITIONS", "SESSION_TIMEOUT", "fault_env", "start_web_process"]

#: the events topic's partitions in fault tests (two workers per agent share them)
PARTITIONS = 4
SESSION_TIMEOUT = 3.0


def fault_env(nats_url: str, data_dir: Path, *, window: int, grace: int, **extra: str) -> dict[str, str]:
    """Environment of every process of one test's deployment."""
    return {
        "NATS_URL": nats_url,
        "METRICS_WINDOW_SECONDS": str(window),
        "METRICS_GRACE_SECONDS": str(grace),
        "PARTITIONS": str(PARTITIONS),
        "SESSION_TIMEOUT": str(SESSION_TIMEOUT),
        "DATA_DIR": str(data_dir),
        "PORT": "0",
        **extra,
    }


async def start_web_process(pool: Workers, *, name: str = "web", **env: str) -> tuple[WorkerProcess, str]:
    """``python -m app web`` on a free port; returns the process and its base URL."""
    web = pool.spawn([sys.executable, "-m", "app", "web"], name=name, **env)
    await web.wait_for_log(r"web listening on http://\S+", timeout=60)
    match = re.search(r"web listening on (http://\S+)", web.log())
    assert match is not None
    return web, match.group(1)


@dataclass
class Deployment:
    """The metric workers of one test, ``per_agent`` processes of each agent, kept that many.

    :meth:`replace` restarts a killed worker under a fresh name, as a supervisor would.
    """

    pool: Workers
    nats_url: str
    agents: tuple[str, ...] = METRIC_AGENTS
    per_agent: int = 2
    workers: dict[str, list[WorkerProcess]] = field(default_factory=dict)
    restarts: int = 0

    async def start(self) -> Deployment:
        for agent in self.agents:
            self.workers[agent] = [
                start_metric_worker(self.pool, agent, name=f"{agent}-{i}") for i in range(self.per_agent)
            ]
        for workers in self.workers.values():
            for worker in workers:
                await worker.wait_ready(timeout=90)
        return self

    def alive(self, agent: str) -> list[WorkerProcess]:
        return [w for w in self.workers[agent] if w.alive()]

    def replace(self, agent: str) -> WorkerProcess:
        """Start a worker for ``agent`` in place of the dead ones."""
        self.restarts += 1
        worker = start_metric_worker(self.pool, agent, name=f"{agent}-r{self.restarts}")
        self.workers[agent] = [*self.alive(agent), worker]
        return worker

    async def wait_balanced(
        self, agent: str, *, only: Sequence[WorkerProcess] | None = None, timeout: float = 60.0
    ) -> None:
        """Until every partition of the agent's events topic is held by exactly one live worker
        (of ``only``, when given)."""
        live = {w.pid for w in (self.alive(agent) if only is None else only)}

        async def balanced() -> bool:
            state = await read_group(self.nats_url, agent)
            members = {m for m, record in state.members.items() if record.pid in live}
            return state.fully_owned("events", PARTITIONS, by=members)

        await poll_until(balanced, timeout=timeout, interval=0.2, what=f"{agent}'s partitions held by live workers")
