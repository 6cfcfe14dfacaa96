"""What every process serves at ``/metrics``, and the probes beside it: shared by the web process
(on its ``PORT``) and the workers (on ``METRICS_PORT``).

- ``exposition``  the ``/metrics`` answer: samples refreshed, then the registry in Prometheus's
                  text format
- ``sampler``     each group's lag and the streams' storage, read from NATS when scraped
- ``loop``        a heartbeat that tells whether the event loop keeps up (``/healthz``)

Metric names start with ``learning_streams_`` (faust's own sensors' with ``faust_``); the
"Monitoring" section of docs/operations.md lists them with the alerts to set.
"""

from app.monitoring.exposition import metrics_response
from app.monitoring.loop import LoopWatch
from app.monitoring.sampler import NatsSampler

__all__ = ["LoopWatch", "NatsSampler", "metrics_response"]
