"""Helpers for the tests and the benchmarks: a dev-only package, never imported by the product.

``tests/`` and ``benchmarks/`` both import it; ``app``, ``agents``, ``bridges``, ``contract`` and
``tables`` never do (the architecture test checks), and it is not installed with them.

- ``oracle``       the three windowed metrics computed offline, straight from the spec
- ``workers``      real worker subprocesses, tracked by PID; ``pipeline`` metric workers and
                   their results; ``faults`` the deployment a fault-injection test runs
- ``web``          the web application against a real nats-server; ``demo`` the demo as a user runs it
- ``streams``, ``metrics``, ``group``, ``subjects``, ``faust_logs``: reading back what landed in
  JetStream, the ``metrics`` bucket, a consumer group's state, subject filters, faust's log;
  ``prometheus`` a process's ``/metrics``, parsed
- ``producer``, ``traffic``, ``live``: input through faust's producer, steady and live traffic
- ``cluster``, ``tls``, ``nats_jwt``: a three-node cluster, certificates, decentralised auth
- ``storage``      a JetStream store filled up on purpose, and given room again
- ``docs``, ``json_schema``, ``browser``: running the docs' examples, checking JSON Schema,
  a headless Chromium
"""

__all__: list[str] = []
