"""The wiring: settings, the faust App factory, HTTP APIs and the CLI (``python -m app ...``).

Layout — imports point one way (tests/unit/test_architecture.py holds the code to it)::

    app  ->  agents, bridges  ->  contract  ->  tables

    app:      __main__ -> cli -> worker, web, demo, simulator;  web -> dashboard;
              worker, web -> monitoring;  each of them -> settings, signals, logs, access, capacity (leaves)
    bridges:  public -> transport -> group -> connection, jetstream, naming, server, storage;
              of bridges, only public imports contract (the faust driver is reusable)
    dev-only: tests -> benchmarks -> testkit -> the product, which imports none of them

- ``tables``    the pure domain of windowed aggregation (windows, aggregators, watermarks, state).
                Imports nothing from the other folders and never reads the clock itself.
- ``contract``  what other teams code against, each fact written once: the event, the result of
                a window, and the names (ids, metrics, the events topic, subjects, KV keys).
                A top-level package of its own because every layer needs it and it needs only
                ``tables``: inside ``agents`` the bridges could not import it, inside
                ``bridges`` the agents could not, and ``tables`` stays free of this
                deployment's names and of pydantic.
- ``agents``    one module per metric agent (a short faust agent over a stream, writing to
                tables), and the windowed runtime they share.
- ``bridges``   every piece of I/O with NATS: the faust driver (``transport/``), consumer
                groups (``group/``), this deployment's public NATS surface (``public/``).
                The only folder that imports ``nats``.
- ``app``       this package: reads settings once at the edge and wires the rest together.

Inside ``app``, a package per process or command, and five leaf modules every one may use:

- ``cli/``        ``python -m app <command>``, one module per command
- ``worker/``     a metric worker: the faust App factory and the worker process
- ``web/``        the web process: HTTP ingest, the query API, OpenAPI, NATS ingest
- ``dashboard/``  the dashboard's pages, added to the web process
- ``monitoring/`` ``/metrics`` and the probes beside it, of the web process and the workers
- ``demo/``       the demo: every process at once, supervised
- ``simulator/``  a simulated class sending events
- ``settings/``   the one frozen settings object, each setting declared once (variable,
                  default, bounds, meaning); ``signals`` waiting for SIGINT/SIGTERM;
                  ``logs`` how every process logs (LOG_FORMAT: text or JSON lines);
                  ``access`` who may read (READ_TOKEN, READ_ACCESS) and the tokens' check;
                  ``capacity`` the count of slots that bounds ingest and the dashboard's streams
"""

__all__: list[str] = []
