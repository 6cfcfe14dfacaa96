"""How much work each benchmark stage does: :data:`DEFAULT` for the report, :data:`QUICK` for CI.

:data:`DEFAULT` takes about fifteen minutes on a 2-core machine; :data:`QUICK` runs every stage on
toy sizes in about a minute, to show the suite still works — its figures mean little.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT", "QUICK", "Scale"]


@dataclass(frozen=True)
class Scale:
    """How much work each stage does."""

    name: str
    #: events of the dataset the ceiling, faust core and the pipeline process: enough that the
    #: agents' start-up skew (up to a second, counted against the pipeline) is a small part of
    #: the pipeline's time; 30,000 events were processed in about that second
    events: int
    #: messages through issue 2's trivial agent
    trivial: int
    #: events per ingest phase (several seconds each, so that start-up is a small part), and
    #: HTTP requests in flight
    ingest: int
    ingest_concurrency: int
    #: one student's 1-minute windows of history, short then long, and requests per query and history
    query_small: int
    query_large: int
    query_requests: int
    #: live events per second and for how long; the windows and grace they land in
    latency_rate: float
    latency_seconds: float
    latency_window: int
    latency_grace: int
    #: the burst: seconds of live events at least (on until the workers are far enough behind),
    #: at this multiple of the pipeline's rate (1 process per agent) measured in the same run, or
    #: at the fallback rate when throughput is not run; windows and grace are the latency stage's
    burst_seconds: float
    burst_students: int
    burst_fallback_rate: float
    #: open windows at which memory is read
    memory_levels: tuple[int, ...]
    #: windows opened and closed before each takeover of the history stage
    history_levels: tuple[int, ...]
    #: keys per scaling run, failovers of each kind, keys of the recovered table
    group_batch: int
    group_rounds: int
    group_keys: int
    session_timeout: float
    #: pairs of ceiling and pipeline-1 runs the throughput stage reports the median of
    throughput_pairs: int = 3
    #: events of the pipeline run with and without metrics, and how many such pairs
    metrics_events: int = 150_000
    metrics_pairs: int = 3
    #: messages per second through the rebalance stage's joins and leaves
    rebalance_rate: float = 2_000.0
    #: seconds of steady flow before, between and after the rebalance stage's join and leave
    rebalance_settle: float = 3.0
    partitions: int = 4
    burst_factor: float = 3.0
    #: the slow-client attack (stalled uploads, idle connections, seconds watched) and dashboard updates
    doors_attack: tuple[int, int, float] = (150, 50, 15.0)
    doors_updates: int = 2_000
    #: events stored for the backfill stage: read by version 1 of a metric, then again by its version 2
    backfill_events: int = 150_000


DEFAULT = Scale(
    name="default", events=150_000, trivial=30_000, ingest=100_000, ingest_concurrency=4,
    query_small=1_000, query_large=525_600, query_requests=500,
    latency_rate=300, latency_seconds=10, latency_window=2, latency_grace=1,
    burst_seconds=4, burst_students=2_000, burst_fallback_rate=18_000,
    memory_levels=(1_000, 10_000, 100_000), history_levels=(10_000, 100_000, 1_000_000),
    group_batch=10_000, group_rounds=3, group_keys=100_000,
    session_timeout=3.0,
)
QUICK = Scale(
    name="quick", events=2_000, trivial=2_000, ingest=1_000, ingest_concurrency=2,
    query_small=1_000, query_large=10_000, query_requests=50,
    latency_rate=100, latency_seconds=2, latency_window=1, latency_grace=1,
    burst_seconds=2, burst_students=300, burst_fallback_rate=6_000,
    memory_levels=(100, 500, 1_000), history_levels=(1_000, 3_000, 10_000),
    group_batch=500, group_rounds=1, group_keys=2_000,
    session_timeout=1.5, throughput_pairs=1, metrics_events=2_000, metrics_pairs=1, doors_attack=(40, 10, 6.0), doors_updates=200,
    rebalance_settle=1.0, backfill_events=2_000,
)
