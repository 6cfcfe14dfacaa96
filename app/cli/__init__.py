"""``python -m app <command>``: the thin CLI the README and the Procfile call, one module per command.

Each command module has ``HELP`` (its line in ``--help``), ``DESCRIPTION`` (the top of its own
``--help``, which says how it finds NATS), ``add_arguments(parser)`` and ``run(args, settings)
-> int`` (its exit status); :mod:`app.cli.main` builds the parser from them, reads the settings once and
runs the command chosen:

- ``worker``    one worker process of a metric agent
- ``nats``      the embedded nats-server with JetStream (and where processes look for NATS)
- ``demo``      the main job: everything at once, with a simulated class
- ``simulate``  a simulated class sending events to HTTP or NATS ingest
- ``web``       HTTP ingest, the query API, the dashboard and the NATS ingest consumer

The benchmark suite is not a command of the product: ``python -m benchmarks`` runs it.
"""

from app.cli.main import main

__all__ = ["main"]
