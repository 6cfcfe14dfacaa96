"""What the windowed runtimes of a worker tell Prometheus.

Nothing here is on the per-event path. A runtime counts as it goes in a plain ``Counter``
(``WindowedRuntime.stats``, also logged every 30 s), and :class:`RuntimeCollector` reads those
counts, each partition's open windows and its watermark when ``/metrics`` is scraped. Only two
things are recorded as they happen, once per closed window or stored write, never per event:
how long after its end + grace a window was closed (a histogram), and the final results stored
or refused, counted when the flush that records them awaits them (the next commit: within a
second while events flow; on an idle stream, at the next event or when the worker stops).

Every family carries a ``metric`` label (the metric's name), so the runtimes of several metrics
in one app (a benchmark's, a test's) share one registry; :func:`runtime_metrics` hands each
runtime its part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tables import MetricDefinition, PartitionWindows

__all__ = [
    "CLOSE_LATENCY_BUCKETS", "PREFIX", "RuntimeCollector", "RuntimeMetrics", "RuntimeView", "runtime_metrics",
]

#: the prefix of every metric the project defines (faust's own sensors use the app's name)
PREFIX: Final = "learning_streams"

#: seconds from a window's end + grace to its closing: the arrival clock's tolerance and the
#: closer's period make the first buckets, a backlog or a pause the last ones
CLOSE_LATENCY_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

#: ``stats`` key -> outcome label of an event added to the windows (late, invalid and error
#: ones are dead-lettered: one dead letter each)
_EVENT_OUTCOMES: Final = {
    "counted": "counted",
    "duplicates": "duplicate",
    "ignored": "ignored",
    "late": "late",
    "invalid": "invalid",
    "error": "error",
}
#: ``stats`` key -> result label of a final result (refused: a write that failed, tried again
#: at the next flush; unwritable: a key that cannot name a KV key, never written)
_FINALS: Final = {"finals_written": "written", "finals_refused": "refused", "unwritable": "unwritable"}
#: ``stats`` key -> (counter name, help) of the plain counters
_COUNTERS: Final = {
    "windows_closed": ("windows_closed", "windows closed with a final result"),
    "windows_failed": ("windows_failed", "windows whose result could not be computed (dead-lettered)"),
    "provisional_values": ("provisional_values", "provisional values of open windows written"),
    "closer_failures": ("closer_failures", "rounds of the closer that failed (NATS away, a write refused)"),
}


class RuntimeView(Protocol):
    """What the collector reads of a runtime (:class:`~agents.windowed.runtime.WindowedRuntime`)."""

    definition: MetricDefinition

    @property
    def stats(self) -> Mapping[str, int]: ...

    def open_windows(self) -> Mapping[int, PartitionWindows]: ...


@dataclass
class RuntimeMetrics:
    """One runtime's part of the metrics: what it records as things happen."""

    metric: str
    grace: float
    _close_latency: Histogram = field(repr=False)

    def __post_init__(self) -> None:
        # This metric's child of the histogram, looked up once: ``labels()`` takes a lock and
        # builds a key, and ``closed`` runs for every window (tens of thousands a second).
        self._latency = self._close_latency.labels(self.metric)

    def closed(self, end: float, now: float) -> None:
        """A window ending at ``end`` was closed at ``now`` (epoch seconds)."""
        self._latency.observe(max(0.0, now - end - self.grace))


class RuntimeCollector(Collector):
    """Every windowed runtime of one registry, read at scrape time."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._runtimes: list[RuntimeView] = []
        self._clock = clock

    def add(self, runtime: RuntimeView) -> None:
        self._runtimes.append(runtime)

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            f"{PREFIX}_window_events", "events added to the windows, by outcome (late, invalid and "
            "error ones are dead-lettered)", labels=["metric", "outcome"],
        )
        finals = CounterMetricFamily(
            f"{PREFIX}_finals", "final results: written (stored), refused (a failed write, tried again), "
            "unwritable (no KV key)", labels=["metric", "result"],
        )
        counters = {
            key: CounterMetricFamily(f"{PREFIX}_{name}", meaning, labels=["metric"])
            for key, (name, meaning) in _COUNTERS.items()
        }
        partitions = GaugeMetricFamily(
            f"{PREFIX}_partitions_active", "partitions this worker processes", labels=["metric"]
        )
        open_windows = GaugeMetricFamily(
            f"{PREFIX}_windows_open", "windows open (sessions too), by partition", labels=["metric", "partition"]
        )
        delay = GaugeMetricFamily(
            f"{PREFIX}_watermark_delay_seconds",
            "now minus the partition's watermark (arrival time up to which it has seen everything)",
            labels=["metric", "partition"],
        )
        now = self._clock()
        for runtime in self._runtimes:
            name, stats = runtime.definition.name, runtime.stats
            for key, outcome in _EVENT_OUTCOMES.items():
                events.add_metric([name, outcome], stats.get(key, 0))
            for key, result in _FINALS.items():
                finals.add_metric([name, result], stats.get(key, 0))
            for key, family in counters.items():
                family.add_metric([name], stats.get(key, 0))
            active = runtime.open_windows()
            partitions.add_metric([name], len(active))
            for partition, windows in sorted(active.items()):
                open_windows.add_metric([name, str(partition)], windows.open_count())
                watermark = windows.watermark()
                if watermark is not None:
                    delay.add_metric([name, str(partition)], max(0.0, now - watermark))
        yield events
        yield finals
        yield from counters.values()
        yield partitions
        yield open_windows
        yield delay


@dataclass
class _Families:
    collector: RuntimeCollector
    close_latency: Histogram


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, _Families] = WeakKeyDictionary()


def runtime_metrics(runtime: RuntimeView, grace: float, registry: CollectorRegistry) -> RuntimeMetrics:
    """Register ``runtime`` with ``registry``'s collector (made on first use) and return its part."""
    families = _BY_REGISTRY.get(registry)
    if families is None:
        collector = RuntimeCollector()
        registry.register(collector)
        latency = Histogram(
            f"{PREFIX}_window_close_latency_seconds",
            "seconds from a window's end + grace to its closing (its final result handed to the writer)",
            ["metric"], registry=registry, buckets=CLOSE_LATENCY_BUCKETS,
        )
        families = _BY_REGISTRY[registry] = _Families(collector, latency)
    families.collector.add(runtime)
    return RuntimeMetrics(runtime.definition.name, grace, families.close_latency)
