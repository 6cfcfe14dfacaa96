"""Where a metric worker's time goes: py-spy attached to the pipeline's workers while they work.

py-spy is not a dependency of the project; install it anywhere (``python3 -m venv /tmp/probe &&
/tmp/probe/bin/pip install py-spy``) and point ``--py-spy`` at it::

    python -m benchmarks.profile --py-spy /tmp/probe/bin/py-spy --events 30000

The full-pipeline stage runs (one worker per agent, the suite's dataset). As in that stage, the
dataset is a backlog with its arrivals (``Faust-Ts``), stored before the workers start (running
workers would count it late: see :mod:`benchmarks.pipeline`). py-spy is attached to each worker
as soon as it logs that it joined its group — after its imports and before it takes its
partitions, a few hundred milliseconds later — and records until the last result, so start-up is
(nearly all) not in the profile. Samples where a thread waits in ``select`` are left out (idle). The
collapsed stacks are kept (``--keep DIR``, e.g. for a flame graph) and summed here into the
stages of a worker, first match wins, most specific first.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from benchmarks.dataset import ResultWatch, batched, declare_topic, make_dataset, publish
from benchmarks.servers import fresh_server
from benchmarks.workers import metric_env, spawn_metric_workers
from testkit.pipeline import METRIC_AGENTS
from testkit.workers import WorkerProcess, Workers

#: (stage, frames that put a sample in it), most specific first
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("agent: JSON decode of the event", ("loads (json/__init__.py",)),
    ("agent: windows.add (key, event time, aggregates)", ("PartitionWindows.add",)),
    ("agent: runtime bookkeeping", ("WindowedRuntime.add",)),
    ("closer: closing windows, writing results", ("WindowedRuntime.run_closer", "FencedWriter._settle_final", "FencedWriter._store_final")),
    ("commit: state flush to the changelog", ("WindowedRuntime.flush", "WindowedRuntime._flush_partition")),
    ("commit: offsets", ("Consumer.commit", "Consumer._commit")),
    ("faust: conductor, stream, event, sensors", ("Conductor._compile_message_handler", "Stream.", "_execute_actor")),
    ("transport: take, decode, deliver", ("Consumer._drain_messages", "Consumer._deliver")),
    ("transport: reader buffering deliveries", ("PartitionReader._",)),
    ("transport: publish acks", ("PipelinedPublisher._on_reply", "PipelinedPublisher._sweep")),
    ("nats-py: reading and parsing", ("Client._read_loop", "Subscription._wait_for_msgs")),
    ("nats-py: socket writes", ("Client._flusher",)),
    ("group: leases and coordination", ("LeaseKeeper", "GroupCoordinator")),
)
_OTHER = "asyncio event loop, other"


def summarize(lines: Iterable[str]) -> dict[str, float]:
    """Share of busy samples per stage, from py-spy's collapsed (``raw``) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, number = line.rstrip("\n").rpartition(" ")
        if not stack or stack.rsplit(";", 1)[-1].startswith("EpollSelector.select"):
            continue
        stage = next((name for name, frames in STAGES if any(f in stack for f in frames)), _OTHER)
        counts[stage] += int(number)
    total = sum(counts.values()) or 1
    return {stage: n / total for stage, n in counts.most_common()}


async def profile(py_spy: str, events: int, keep: Path) -> dict[str, dict[str, float]]:
    dataset = make_dataset(events, partitions=4, window=60, grace=10)
    async with fresh_server() as (url, client, base):
        await declare_topic(client, dataset.partitions)
        await publish(client, batched(dataset.messages(), 250))
        env = metric_env(url, base / "data", partitions=4, window=60, grace=10, session_timeout=3.0)
        with Workers(base / "logs", env) as pool:
            async with ResultWatch(client) as watch:
                workers = spawn_metric_workers(pool, METRIC_AGENTS, 1)
                spies: list[subprocess.Popen[bytes]] = []

                async def attach(worker: WorkerProcess) -> None:
                    await worker.wait_for_log(r"joined group", timeout=90)
                    spies.append(subprocess.Popen(
                        [py_spy, "record", "--pid", str(worker.pid), "--rate", "250", "--format", "raw",
                         "--output", str(keep / f"{worker.name}.txt"), "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    ))

                try:
                    await asyncio.gather(*(attach(worker) for worker in workers))
                    await watch.wait_for(dataset.expected.keys(), timeout=300)
                finally:
                    for spy in spies:
                        spy.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
                    for spy in spies:
                        spy.wait(30)
    return {w.name: summarize((keep / f"{w.name}.txt").read_text().splitlines()) for w in workers}


def report(shares: dict[str, dict[str, float]]) -> str:
    stages = [name for name, _ in STAGES] + [_OTHER]
    lines = [f"{'stage':<50}" + "".join(f"{name:>15}" for name in shares)]
    for stage in sorted(stages, key=lambda s: -sum(share.get(s, 0.0) for share in shares.values())):
        lines.append(f"{stage:<50}" + "".join(f"{share.get(stage, 0.0):>15.1%}" for share in shares.values()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", default=shutil.which("py-spy"), help="the py-spy binary")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--keep", type=Path, default=None, help="directory for the collapsed stacks")
    args = parser.parse_args()
    if not args.py_spy:
        parser.error("py-spy not found: install it in a scratch venv and pass --py-spy")
    logging.basicConfig(level=logging.WARNING)
    keep = args.keep or Path(tempfile.mkdtemp(prefix="bench-profile-"))
    keep.mkdir(parents=True, exist_ok=True)
    shares = asyncio.run(profile(args.py_spy, args.events, keep))
    print(f"busy time of each worker by stage (collapsed stacks in {keep})")
    print(report(shares))


if __name__ == "__main__":
    main()
