"""The wiring: settings, the faust App factory, HTTP APIs and the CLI (``python -m app ...``).

Layout — imports point one way::

    app  ->  agents, bridges  ->  tables

- ``tables``  the pure domain of windowed aggregation (windows, aggregators, watermarks, state).
              Imports nothing from the other folders and never reads the clock itself.
- ``agents``  one module per agent: a short faust agent over a stream, writing to tables.
- ``bridges`` every piece of I/O with NATS: the faust transport, group coordination, the embedded
              server, ingest, the KV sink and result subjects, the KV reader. The only folder
              that imports ``nats``.
- ``app``     this package: reads settings once at the edge and wires the rest together.
"""

__all__: list[str] = []
