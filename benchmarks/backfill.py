"""A new version of a metric going through the retained events (issue 15, versions).

A fixed metric is redeployed as version 2 beside version 1 (docs/operations.md, "Fixing a
metric"): a consumer group of its own, so its first worker reads the events topic from the
start of its retention and recomputes every final. This stage measures how fast, against the
same metric's version 1 on the same events in the same run:

1. **Version 1** (``engagement``, one worker) is started on a stored backlog, as the throughput
   stage's pipeline reads one (:mod:`benchmarks.pipeline`: the backlog arrived a day ago, so no
   event is late, and every window closes once the worker has caught up). Timed from when it
   begins processing (it logs taking its first partition) to its last final in KV.
2. Once version 1 has committed every record, and while it keeps running, **version 2** is
   started: a module written to the run's directory that defines the very same metric with
   ``version=2``, run by path (``python -m app worker <path>``) as a data engineer's fix is.
   Timed the same way, from its first processing to its last final (``engagement_v2.*``): the
   ratio of the two rates is the backfill's cost against the live pipeline, like for like. Also
   timed as an operator sees it: from the process's start until its backfill record in the
   registry (``backfill.engagement_v2``) says complete — that adds the worker's start-up and up
   to one interval between its counts (``COUNT_INTERVAL``).

Both versions' finals are read back whole and compared with the oracle (version 2's documents
are version 1's with ``"version": 2``), and nothing may be dead-lettered: a backfill that
computes a different result, or judges a retained event late, fails the run. Worker CPU per
event is reported beside the rates: on a shared machine another process's load stretches the
wall clock far more than the CPU the work takes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from benchmarks.dataset import Dataset, ResultWatch, batched, dead_letter_counts, declare_topic, publish
from benchmarks.pipeline import ACTIVATED, BATCH_EVENTS, cpu_at_start, cpu_seconds
from benchmarks.report import Row
from benchmarks.workers import caught_up, log_time, metric_env
from bridges.naming import Naming
from bridges.public.version_progress import COUNT_INTERVAL
from contract.names import EVENTS_TOPIC, metric_series
from contract.registry import BACKFILL_PREFIX, REGISTRY_BUCKET, Backfill
from testkit.pipeline import values_match
from testkit.workers import WorkerProcess, Workers, poll_until

__all__ = ["BackfillResult", "METRIC", "Pass", "backfill_rows", "check_finals", "run_backfill"]

#: the metric fixed and redeployed
METRIC = "engagement"
SERIES = metric_series(METRIC, 2)

#: version 2: the built-in definition, unchanged but for its version
_FIXED_MODULE = f'''
from dataclasses import replace

from agents.{METRIC} import define as define_version_1
from agents.windowed import windowed_metric


def define(window_seconds, grace_seconds):
    return replace(define_version_1(window_seconds, grace_seconds), version=2)


build = windowed_metric(define)
'''


@dataclass(frozen=True)
class Pass:
    """One version's pass over the stored events."""

    #: process start -> it began processing (took its first partition)
    startup: float
    #: began processing -> its last final in KV
    seconds: float
    #: worker CPU seconds (user + system) over ``seconds``
    cpu_seconds: float


@dataclass(frozen=True)
class BackfillResult:
    events: int
    finals: int
    live: Pass
    backfill: Pass
    #: version 2's process start -> its backfill record complete (``completed_at``)
    until_complete: float
    #: records the record said version 2 had to go through when its worker started
    stored_records: int


async def run_backfill(
    url: str, client: Client, dataset: Dataset, *, base_dir: Path, session_timeout: float, timeout: float = 300.0
) -> BackfillResult:
    """See the module docstring."""
    expected = {key: value for key, value in dataset.expected.items() if key.startswith(f"{METRIC}.")}
    await declare_topic(client, dataset.partitions)
    await publish(client, batched(dataset.messages(), BATCH_EVENTS))
    records = await _stored_records(client, dataset.partitions)
    env = metric_env(
        url, base_dir / "data", partitions=dataset.partitions, window=dataset.window, grace=dataset.grace,
        session_timeout=session_timeout,
    )
    fixed = base_dir / "fixed" / f"{METRIC}.py"
    fixed.parent.mkdir()
    fixed.write_text(_FIXED_MODULE)
    with Workers(base_dir / "logs", env) as pool:
        async with ResultWatch(client, keep_values=True) as watch:
            live_started = time.time()
            live = pool.spawn([sys.executable, "-m", "app", "worker", METRIC], name="v1")
            live_pass = await _pass(live, watch, METRIC, expected, live_started, timeout)

            async def live_idle() -> bool:
                return await caught_up(client, METRIC, EVENTS_TOPIC, dataset.partitions)

            await poll_until(live_idle, timeout=timeout, interval=0.1, what="version 1 to commit every record")

            backfill_started = time.time()
            backfill = pool.spawn([sys.executable, "-m", "app", "worker", str(fixed)], name="v2")
            renamed = {SERIES + key.removeprefix(METRIC): value for key, value in expected.items()}
            backfill_pass = await _pass(backfill, watch, SERIES, renamed, backfill_started, timeout)
            record = await poll_until(
                lambda: _complete_record(client), timeout=timeout, interval=0.05, what=f"{SERIES}'s backfill record"
            )
            assert live.alive(), "version 1 stopped during the backfill"
        check_finals(watch.values, expected, version=1, series=METRIC)
        check_finals(watch.values, expected, version=2, series=SERIES)
    letters = await dead_letter_counts(client)
    if letters:
        raise AssertionError(f"stored events were dead-lettered: {dict(letters)}")
    assert record.completed_at is not None
    return BackfillResult(
        events=dataset.size, finals=len(expected), live=live_pass, backfill=backfill_pass,
        until_complete=record.completed_at.timestamp() - backfill_started, stored_records=records,
    )


async def _pass(
    worker: WorkerProcess, watch: ResultWatch, series: str, expected: dict[str, Any], started: float, timeout: float
) -> Pass:
    """Until every final of ``expected`` is in KV; when ``worker`` began and how long it took."""
    done = asyncio.Event()
    began: dict[int, float] = {}
    cpu_start = asyncio.ensure_future(cpu_at_start([worker], began, done))
    try:
        await watch.wait_for(expected, timeout=timeout)
        cpu = cpu_seconds(worker.pid) - began.get(worker.pid, 0.0)
    finally:
        done.set()
        await cpu_start
    first = log_time(worker, ACTIVATED, after=started)
    if first is None:
        raise AssertionError(f"{worker.name} never logged that it took a partition")
    return Pass(startup=first - started, seconds=watch.last(series) - first, cpu_seconds=cpu)


async def _stored_records(client: Client, partitions: int) -> int:
    """Records the events topic holds (what version 2 has to go through)."""
    naming = Naming()
    js = client.jetstream()
    infos = await asyncio.gather(*(js.stream_info(naming.stream(EVENTS_TOPIC, p)) for p in range(partitions)))
    return sum(info.state.messages for info in infos)


async def _complete_record(client: Client) -> Backfill | None:
    """Version 2's backfill record once it says complete; None before."""
    try:
        kv = await client.jetstream().key_value(REGISTRY_BUCKET)
        entry = await kv.get(f"{BACKFILL_PREFIX}.{SERIES}")
    except (BucketNotFoundError, KeyNotFoundError):
        return None
    record = Backfill.parse(entry.value or b"")
    return record if record.complete else None


def check_finals(values: dict[str, bytes], expected: dict[str, Any], *, version: int, series: str) -> None:
    """Every final of ``series`` equals the oracle's (version 2's say their version), and there
    is no other."""
    written = {key for key in values if key.startswith(f"{series}.")}
    wanted = {series + key.removeprefix(METRIC) for key in expected}
    if written != wanted:
        raise AssertionError(
            f"{series}: {len(wanted - written)} finals missing, {len(written - wanted)} unexpected, "
            f"e.g. {sorted(wanted ^ written)[:3]}"
        )
    for key, value in expected.items():
        document = json.loads(values[series + key.removeprefix(METRIC)])
        said = document.pop("version", 1)
        if said != version or not values_match(document, value):
            raise AssertionError(f"{series}: final {key} differs from the oracle: {document} != {value}")


def backfill_rows(run: BackfillResult, stage: str, *, pipeline_rate: float | None) -> list[Row]:
    """The live reference, the backfill's rate against it, and the time an operator waits."""
    live_rate = run.events / run.live.seconds
    rate = run.events / run.backfill.seconds
    live_cpu = 1e6 * run.live.cpu_seconds / run.events
    cpu = 1e6 * run.backfill.cpu_seconds / run.events
    pipeline = (
        f"; pipeline-1 of this run (3 metrics, a process each) {pipeline_rate:,.0f} events/s" if pipeline_rate else ""
    )
    after = run.until_complete - run.backfill.startup - run.backfill.seconds
    shape = f"{run.events:,} stored events ({run.stored_records:,} batch records), {run.finals:,} finals of {METRIC}"
    return [
        Row("backfill-live", stage, f"version 1 of {METRIC}, 1 process, over the stored events", live_rate, "events/s",
            None, "version 1",
            f"{shape}; from its first processing to its last final (start-up {run.live.startup:.1f} s left out); "
            f"worker CPU {live_cpu:.0f} us per event{pipeline}"),
        Row("backfill-rate", stage, "version 2 recomputing every final, 1 process, beside version 1", rate, "events/s",
            rate / live_rate, "version 1",
            f"the same events read again from the start of the retention by a new group, timed the same way "
            f"(start-up {run.backfill.startup:.1f} s left out); worker CPU {cpu:.0f} us per event, "
            f"{cpu / live_cpu:.2f} of version 1's; every final of both versions equals the oracle"),
        Row("backfill-complete", stage, "version 2 deployed -> its backfill record complete", run.until_complete, "s",
            run.until_complete / run.backfill.seconds, "its processing time",
            f"what an operator waits: process start-up {run.backfill.startup:.1f} s, processing "
            f"{run.backfill.seconds:.1f} s, then {after:.1f} s until its last commit was counted (its workers "
            f"count every {COUNT_INTERVAL:g} s)"),
    ]
