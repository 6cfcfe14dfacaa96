"""This deployment's public NATS surface: the names other teams code against, and what moves
events and results through them.

- ``streams``         the public subjects and bucket (``events.<type>.<student_id>``,
                      ``results.<metric>.<student_id>``, ``deadletter.*``, KV ``metrics``) and the
                      streams behind them
- ``event_sink``      validated events into the faust topic the metric workers consume; both
                      ingest paths end here
- ``nats_ingest``     the NATS ingest path, pulling the shared durable consumer of
                      ``durable_puller``
- ``ingest_client``   publishing events the way any NATS client may
- ``window_results``  closed windows into the ``metrics`` bucket and onto result subjects
- ``metrics_reader``  reading the ``metrics`` bucket; ``results_client`` a client for services
                      that react to results

Everything here rides on the driver's publisher and session (:mod:`bridges.transport`).
"""

__all__: list[str] = []
