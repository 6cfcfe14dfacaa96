"""The windowed runtime every metric module of ``agents`` builds on.

A metric module in ``agents/`` defines a :class:`~tables.MetricDefinition` and exposes
``build = windowed_metric(define)``. That gives, per worker:

- an **agent** over the events topic adding each event of each record (one event, or a batch:
  see :mod:`tables.batch`), with its arrival time (when the platform first stored it), to its
  partition's :class:`~tables.PartitionWindows`; a window counts an ``event_id`` once, however
  late its copy comes while the window is open, and late events and events that cannot be read
  are dead-lettered with the reason, never dropped;
- a **closer** that, every :data:`CLOCK_INTERVAL`, reads the arrival clock (what the streams
  promise about the arrivals still to come, see :mod:`tables.watermark`), moves each partition's
  watermark accordingly (an idle stream's too), and writes each closed window's final result
  once; a window whose result cannot be computed goes to ``deadletter.error.<metric>`` instead,
  and the others close normally;
- with ``update_seconds`` (``METRICS_UPDATE_SECONDS``), an **updater** that writes, that often,
  the current value of each open fixed window that changed, ``"final": false``, under the key its
  final value will take (best effort, never in the way of a flush or of closing, never over a
  final value; see :mod:`bridges.public.window_results`). Sessions have none: their start, hence
  their key, can move;
- a **state table**, a faust table whose changelog holds the open windows, flushed at every
  commit (coalesced: one record per changed window) in the exactly-once order that
  :meth:`WindowedRuntime.flush` writes down. On recovery the state is rebuilt from the last
  marker and reading resumes there, so a replayed event is never counted twice; a standby keeps
  a replica of the changelog and takes over without replaying it.

Exactly-once needs this agent to be the only reader of the events topic in its app, which is how
the project runs every agent (one app, one group, per agent).

The modules, one concept each:

- ``context``      what the wiring hands an agent module (:class:`AgentContext`), and the two
                   seams to NATS it carries as protocols (:class:`ArrivalClock`,
                   :class:`ResultWriter`)
- ``metric``       :func:`windowed_metric`: a metric module's ``build``, the faust agent
- ``runtime``      :class:`WindowedRuntime`: add events, close windows, flush at each commit
- ``decisions``    what the runtime writes about each event and window, decided without I/O
- ``parsing``      the events' JSON parsed as ``json.loads`` would, faster
- ``driver``       :class:`MetricDriver`: a metric run on events in a test, without NATS, and
                   what a worker would store and publish (the same decisions)
- ``partitions``   what the runtime keeps per partition and per write in flight
- ``state_table``  the faust table whose changelog is the state: recovery, standbys, rebalances
- ``documents``    what is written about a window: its public JSON, KV key and subject, strict
                   JSON, RFC 3339 times
- ``monitoring``   what the runtimes tell Prometheus: their counts, open windows, watermark
                   delays and close latency, read at scrape time (nothing per event)
"""

from agents.windowed.context import AgentContext, ArrivalClock, ResultWriter
from agents.windowed.documents import result_document
from agents.windowed.driver import DeadLetter, MetricDriver, Published
from agents.windowed.metric import MetricBuild, windowed_metric
from agents.windowed.runtime import CLOCK_INTERVAL, WindowedRuntime

__all__ = [
    "AgentContext",
    "ArrivalClock",
    "CLOCK_INTERVAL",
    "DeadLetter",
    "MetricBuild",
    "MetricDriver",
    "Published",
    "ResultWriter",
    "WindowedRuntime",
    "result_document",
    "windowed_metric",
]
