"""Running one worker process of an agent (``python -m app worker <agent>``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from signal import Signals
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from app.settings import Settings
from app.worker.factory import load_agent, make_app
from app.worker.monitoring import WorkerEndpoint, install_sensors
from app.worker.stopping import StopDeadline
from bridges.connection import ConnectionSettings, connect

__all__ = ["run_worker"]

#: young-generation threshold: every message makes a handful of short-lived objects, freed by
#: reference counting; collecting every 700 allocations (CPython's default) only burns time
_GC_THRESHOLD = (50_000, 20, 20)

#: exit status of a process ended by SIGINT, as shells report it (128 + 2)
_INTERRUPTED = 130


def run_worker(agent: str, settings: Settings, nats_urls: tuple[str, ...]) -> int:
    """Run until SIGTERM/SIGINT: faust's Worker drains, commits and leaves the group, within
    :data:`~app.worker.stopping.STOP_SECONDS` (past it the process exits with status 1).

    With ``METRICS_PORT`` set, :class:`~app.worker.monitoring.WorkerEndpoint` serves ``/metrics``,
    ``/healthz`` and ``/readyz`` there for as long as the worker runs.

    Returns 130 without a word when Ctrl-C comes while NATS is still being reached.

    Raises:
        ConfigError: ``agent`` names no agent (or its module has no ``build``); said before NATS
            is waited for, so a typo is reported at once.
        BrokenError: NATS could not be reached (or refused the credentials) within
            ``NATS_CONNECT_DEADLINE``; the CLI prints it as one line. The loop made for faust
            is closed and unset first.
    """
    module = load_agent(agent)
    # faust reports a NATS it cannot reach as a crash of its start-up, tracebacks and all:
    # reach it first, on the loop faust then runs on, so that case is one clear error.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_reach_nats(settings.connection(nats_urls, name=f"learning-streams:{agent}")))
    except KeyboardInterrupt:
        # Ctrl-C while still waiting for NATS: nothing started, so nothing to drain or report.
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C during the clean-up
            _discard(loop)
        return _INTERRUPTED
    except BaseException:
        _discard(loop)
        raise
    services: list[WorkerEndpoint] = []
    sensors: list[faust.Sensor] = []
    if settings.metrics_port is None:
        app = make_app(agent, settings, nats_urls, module=module)
    else:
        registry = CollectorRegistry()
        app = make_app(agent, settings, nats_urls, module=module, registry=registry)
        sensors.append(install_sensors(app, registry))
        services.append(WorkerEndpoint(app, registry, port=settings.metrics_port))
    _tune_gc()
    worker = _Worker(
        app,
        *services,
        sensors=sensors,
        loglevel=settings.log_level,
        # Output goes where the process's stdout goes; faust would turn prints into log warnings.
        redirect_stdouts=False,
        # Logging is app.logs' (LOG_LEVEL, LOG_FORMAT), configured by the CLI.
        override_logging=False,
        # No console messages of faust's own ("-INT- -INT- ..." on Ctrl-C, "OK ^" when ready):
        # the logs say the same ("Worker ready"), in the format asked for.
        quiet=True,
    )
    # Nor its spinner, which writes cursor escape codes even where stdout is a file; without it
    # faust logs "Ready" instead.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


class _Worker(faust.Worker):
    """faust's Worker, whose first stop signal also starts the stop deadline (:mod:`app.worker.stopping`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_deadline = StopDeadline()

    # mode's Worker sends SIGTERM and SIGINT (the first of either) here; a unit test checks the
    # hook is still there, so a faust or mode upgrade that renames it fails a test, not a stop.
    def _schedule_shutdown(self, signal: Signals) -> None:
        self.stop_deadline.start()
        super()._schedule_shutdown(signal)


async def _reach_nats(connection: ConnectionSettings) -> None:
    client = await connect(connection)
    await client.close()


def _discard(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the pre-flight left running, then close the loop and unset it (as ``asyncio.run`` does)."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _tune_gc() -> None:
    """Measured 5-6 % of a metric worker's time in the cyclic GC; about 0.4 % after this.

    The imports and the app built so far live as long as the process: ``gc.freeze`` moves them
    out of every future collection's reach.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLD)
