"""The full pipeline: a backlog in JetStream -> the three metric workers over nats:// -> results in KV.

Time. The dataset is a stored backlog: every event arrived (``Faust-Ts``) half a second after it
occurred, a day ago (see :mod:`benchmarks.dataset`). Workers that were already running would
have been promised by the streams that nothing older than "now" is still to come, and would
rightly count that backlog late. So the backlog is stored first, and the workers are started on
it: they count every event, their windows stay open while they work the backlog off (the
streams promise nothing about records they have not processed yet), and all close at once when
they have caught up and the live promise applies (at the arrival clock's next reading, within a
quarter of a second). Before arrival time, windows closed as event time moved through the
backlog; the closing work is the same, done at the end, and the open state meanwhile is larger
(every window of the dataset: 76,000 for the default 150,000 events).

What is timed. Starting a worker (imports, joining its group, recovering its empty state) takes
a few seconds and is not the pipeline's throughput, so the clock starts when the **first worker
begins processing** — when it activates its partitions, which it logs to the millisecond
("partition N resumes at offset ...") right before its first fetch — and stops when the last
expected result is in KV. Before, the workers were started and settled on an empty topic and
the clock ran from the first publish, so all of them began together; now they are started
together and begin within a fraction of a second of each other (mostly their groups settling).
That skew is reported with the figure and counted against the pipeline, never for it: timing
each agent from its own start instead would let the agents that start first, or last, run part
of their work on cores the others do not use yet or any more (on the toy sizes of ``--quick``
the agents hardly overlap at all), and subtracting a start-up measured on an empty topic would
take the difference of two noisy figures as large as the one wanted. Each agent's own time
(from its first worker's start to its last result) is reported beside it.

Every event is read by each agent, so "events/s" is events of the dataset per second, each
through all three metrics — the same unit as the faust-core row.

Metrics (issue 14). Run with ``metrics=True``, every worker gets a ``METRICS_PORT`` (faust's
Prometheus sensors instead of its plain monitor, the windowed runtime's metrics, the endpoint)
and each worker's ``/metrics`` is scraped once a second for the whole run — fifteen times more
often than a usual Prometheus scrape, so the figure bounds what collection costs. Without it,
the workers run as the Procfile's would without ``METRICS_PORT``: nothing of it runs. Besides the
time, the run reports the CPU seconds the workers used from their first processing to the last
result (``/proc``): on a shared machine, another process's load stretches a run's time far more
than the CPU its own work takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from nats.aio.client import Client

from benchmarks.dataset import (
    Dataset,
    ResultWatch,
    batched,
    dead_letter_counts,
    declare_topic,
    publish,
    verify_sample,
)
from benchmarks.report import Row
from benchmarks.workers import log_time, metric_env, spawn_metric_workers
from testkit.pipeline import METRIC_AGENTS
from testkit.workers import WorkerProcess, Workers

__all__ = ["ACTIVATED", "BATCH_EVENTS", "PipelineResult", "cpu_at_start", "cpu_seconds", "pipeline_row", "run_pipeline"]

#: events per batch record, about what HTTP ingest writes for a 1,000-event request over the
#: partitions of these runs
BATCH_EVENTS = 250
#: what a metric worker logs when it takes a partition and is about to read it
ACTIVATED = r"partition \d+ resumes at offset"


@dataclass(frozen=True)
class PipelineResult:
    processes: int
    #: first worker processing -> last result of any agent
    seconds: float
    #: storing the backlog, before any worker started
    publish_seconds: float
    #: agent -> its first worker processing -> its last result
    per_agent: dict[str, float]
    #: first worker processing -> last worker processing
    skew: float
    #: worker start -> first worker processing
    startup: float
    #: whether the workers served /metrics, and how many scrapes answered during the run
    metrics: bool = False
    scrapes: int = 0
    #: CPU seconds (user + system) of every worker from its first processing to the last result
    cpu_seconds: float = 0.0
    #: the same per agent (all its workers)
    cpu_by_agent: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the nats-server from the first worker processing to the last result (None:
    #: its process was not given)
    server_cpu_seconds: float | None = None


async def run_pipeline(
    url: str, client: Client, dataset: Dataset, *, processes: int, base_dir: Path, session_timeout: float,
    timeout: float = 300.0, metrics: bool = False, graceful: bool = False, server_pid: int | None = None,
) -> PipelineResult:
    """Run ``processes`` workers per agent over ``dataset`` (see the module docstring); with
    ``metrics``, each worker serves ``/metrics``, scraped every second while the run lasts. The
    workers are killed at the end, or with ``graceful`` stopped by SIGTERM (their last flush
    stored) once the figures are taken. With ``server_pid`` (the nats-server's), its CPU is
    measured too, from the first worker processing to the last result."""
    await declare_topic(client, dataset.partitions)
    publish_seconds = await publish(client, batched(dataset.messages(), BATCH_EVENTS))
    env = metric_env(
        url, base_dir / "data", partitions=dataset.partitions, window=dataset.window, grace=dataset.grace,
        session_timeout=session_timeout,
    )
    if metrics:
        env["METRICS_PORT"] = "0"
    scrapes = 0
    with Workers(base_dir / "logs", env) as pool:
        async with ResultWatch(client) as watch:
            spawned = time.time()
            workers = spawn_metric_workers(pool, METRIC_AGENTS, processes)
            done = asyncio.Event()
            scraper = asyncio.ensure_future(_scrape(workers, done) if metrics else asyncio.sleep(0, 0))
            began: dict[int, float] = {}
            starts_cpu = asyncio.ensure_future(cpu_at_start(workers, began, done, server_pid))
            try:
                await watch.wait_for(dataset.expected.keys(), timeout=timeout)
                used = {w.name: cpu_seconds(w.pid) - began.get(w.pid, 0.0) for w in workers}
                server_cpu = None if server_pid is None else cpu_seconds(server_pid) - began.get(server_pid, 0.0)
            finally:
                done.set()
                scrapes = await scraper
                await starts_cpu
            if graceful:
                await asyncio.gather(*(worker.terminate() for worker in workers))
        starts = {agent: _began(workers, agent, spawned) for agent in METRIC_AGENTS}
    first, last = min(starts.values()), max(starts.values())
    per_agent = {agent: watch.last(agent) - starts[agent] for agent in METRIC_AGENTS}
    await verify_sample(client, dataset.expected)
    letters = await dead_letter_counts(client)
    if letters:
        raise AssertionError(f"the stored backlog was dead-lettered in part: {dict(letters)}")
    seconds = max(watch.last(agent) for agent in METRIC_AGENTS) - first
    by_agent = {
        agent: sum(cpu for name, cpu in used.items() if name.rsplit("-", 1)[0] == agent) for agent in METRIC_AGENTS
    }
    return PipelineResult(
        processes, seconds, publish_seconds, per_agent, last - first, first - spawned, metrics=metrics, scrapes=scrapes,
        cpu_seconds=sum(used.values()), cpu_by_agent=by_agent, server_cpu_seconds=server_cpu,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_at_start(
    workers: list[WorkerProcess], began: dict[int, float], done: asyncio.Event, server_pid: int | None = None
) -> None:
    """Each worker's CPU seconds when it logs that it begins processing (looked at every 20 ms),
    and the server's (``server_pid``, if given) when the first worker does."""
    pattern = re.compile(ACTIVATED)
    while not done.is_set() and len(began) < len(workers) + (server_pid is not None):
        for worker in workers:
            if worker.pid not in began and pattern.search(worker.log()):
                began[worker.pid] = cpu_seconds(worker.pid)
                if server_pid is not None and server_pid not in began:
                    began[server_pid] = cpu_seconds(server_pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.02)


async def _scrape(workers: list[WorkerProcess], done: asyncio.Event, every: float = 1.0) -> int:
    """Scrape each worker's /metrics every ``every`` seconds until ``done``; how many answered."""
    answered = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while not done.is_set():
            for worker in workers:
                found = re.findall(r"metrics listening on (http://\S+)", worker.log())
                if not found:
                    continue  # still starting
                try:
                    async with http.get(f"{found[-1]}/metrics") as response:
                        await response.read()
                        answered += response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    pass  # a worker busy past the timeout: the next round asks again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every)
    return answered


def _began(workers: list[WorkerProcess], agent: str, spawned: float) -> float:
    """When the first worker of ``agent`` began processing (epoch seconds, from its log)."""
    times = [log_time(w, ACTIVATED, after=spawned) for w in workers if w.name.rsplit("-", 1)[0] == agent]
    found = [t for t in times if t is not None]
    if not found:
        raise AssertionError(f"no {agent} worker logged that it took a partition")
    return min(found)


def pipeline_row(run: PipelineResult, dataset: Dataset, ceiling: float, core: float) -> Row:
    """The throughput stage's row of ``run``: events/s as a ratio to the ceiling, per-worker rates."""
    rate = dataset.size / run.seconds
    per_worker = ", ".join(
        f"{agent} {dataset.size / run.processes / seconds / 1000:.1f}k" for agent, seconds in run.per_agent.items()
    )
    workers = 3 * run.processes
    return Row(
        f"pipeline-{run.processes}", "full pipeline",
        f"{run.processes} process{'es' if run.processes > 1 else ''} per agent ({workers} workers)",
        rate, "events/s", rate / ceiling, "ceiling",
        f"{rate / core:.2f} of faust core; events/s per worker, each agent from its own start: {per_worker}; "
        f"backlog stored in {run.publish_seconds:.1f} s before the workers started; timed from the first worker "
        f"processing (start-up {run.startup:.1f} s left out; the agents began within {run.skew:.2f} s)",
    )
