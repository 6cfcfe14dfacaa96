"""The web process (``python -m app web``): HTTP ingest, the query API, health, OpenAPI, and the
NATS ingest consumer, on one NATS connection.

Shutdown on SIGTERM or SIGINT is a drain with a deadline (``shutdown_timeout``, by default
:data:`DRAIN_SECONDS`; deployments give the process longer before they kill it):

1. end the dashboard's event streams; stop listening, and at the same time stop pulling the
   NATS ingest stream;
2. let in-flight HTTP requests finish, uploads included (their events stored and answered; see
   :mod:`app.web.draining`), and finish the chunk the NATS ingest consumer holds (forwarded,
   dead-lettered, acked); a request arriving meanwhile on a kept-alive connection gets 503;
3. close the connections (aiohttp's cleanup), then the event sink (outstanding
   acknowledgements), then drain the NATS connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web

from app.access import ReadAccess, ReadGuard, TokenAccess, exposure_warnings, load_read_access
from app.dashboard import add_dashboard
from app.logs import say
from app.settings import Settings
from app.signals import until_signalled
from app.web.doors import Doors
from app.web.draining import RequestDrain
from app.web.handlers import ApiHandlers
from app.web.openapi import openapi_document
from app.web.routes import ROUTES, add_routes
from app.web.services import WebOptions, WebServices
from bridges.connection import Secret
from tables.errors import ConfigError

__all__ = ["DRAIN_SECONDS", "make_web_app", "run_web", "serve_web"]

log = logging.getLogger(__name__)

_RETRY_AFTER: Final = 2
#: seconds in-flight requests and NATS ingest get to finish after the signal (steps 1-2 above)
DRAIN_SECONDS: Final = 30.0


def make_web_app(
    services: WebServices,
    *,
    ingest_token: Secret | None = None,
    read_guard: ReadGuard | None = None,
    clock: Callable[[], float] = time.time,
    drain: RequestDrain | None = None,
    doors: Doors = Doors(),
) -> web.Application:
    """The aiohttp application over started :class:`WebServices` (which it does not own), with
    the routes of :data:`app.web.routes.ROUTES`, the read routes behind ``read_guard`` (None:
    reads are open).

    With ``drain``, its middleware counts requests so a shutdown can wait for them. ``doors``
    bounds ingest (the header deadline is the runner's: :meth:`Doors.handler_args`).
    """
    api = ApiHandlers(
        services, document=openapi_document(), ingest_token=ingest_token, retry_after=_RETRY_AFTER,
        doors=doors, clock=clock,
    )
    app = web.Application(middlewares=[drain.middleware] if drain is not None else [])
    add_routes(app, api, ROUTES, guard=read_guard or ReadGuard(None))
    api.metrics.attach(app)
    return app


async def serve_web(
    settings: Settings,
    nats_urls: tuple[str, ...],
    *,
    until: asyncio.Future[object],
    on_listening: Callable[[str], None] = lambda url: None,
    shutdown_timeout: float = DRAIN_SECONDS,
) -> None:
    """Serve on ``HOST``:``PORT`` until ``until`` is done, then shut down as the module docstring says.

    ``on_listening`` is told the URL once requests are accepted (``PORT=0`` picks a free port).
    Listening beyond loopback with ingest or reads open logs a warning for each.

    Raises:
        ConfigError: ``READ_ACCESS`` names nothing usable (before NATS is reached), or the port
            cannot be listened on.
    """
    host = settings.host
    guard = ReadGuard(_read_access(settings))
    for warning in exposure_warnings(host, ingest_open=settings.ingest_token is None, reads_open=guard.open):
        log.warning("%s", warning)
    options = dataclasses.replace(WebOptions.from_settings(settings), stop_timeout=shutdown_timeout)
    services = WebServices(settings.connection(nats_urls), options)
    drain = RequestDrain(retry_after=_RETRY_AFTER)
    doors = Doors.from_settings(settings)
    async with services:
        app = make_web_app(services, ingest_token=settings.ingest_token, read_guard=guard, drain=drain, doors=doors)
        # The dashboard's pages are not the API (the OpenAPI document describes the route table,
        # make_web_app's routes), so they are added here, where the web process is put together.
        dashboard = add_dashboard(
            app, services.reader, guard=guard,
            window_seconds=settings.window_seconds, grace_seconds=settings.grace_seconds,
            streams=settings.dashboard_streams, students=settings.dashboard_students,
            metric_keys=settings.dashboard_metric_keys, retry_after=_RETRY_AFTER,
        )
        # What is still running after the drain gets one more second before aiohttp cancels it.
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, **doors.handler_args())
        await runner.setup()
        site = web.TCPSite(runner, host, settings.port)
        try:
            await _listen(site, host, settings.port)
            on_listening(_url(host, runner.addresses[0][1]))
            await until
            log.info("stopping: finishing in-flight requests and NATS ingest")
            await dashboard.close()  # open event streams end now instead of holding the drain
            await site.stop()
            await asyncio.gather(drain.drain(shutdown_timeout), services.ingest.stop(shutdown_timeout))
        finally:
            await runner.cleanup()
        # Leaving the block: the sink waits for outstanding acknowledgements, NATS is drained.
    log.info("stopped")


def _read_access(settings: Settings) -> ReadAccess | None:
    """Who may read: the deployment's READ_ACCESS, else READ_TOKEN, else anyone (None)."""
    if settings.read_access is not None:
        return load_read_access(settings.read_access)
    return TokenAccess(settings.read_token) if settings.read_token is not None else None


def _url(host: str, port: int) -> str:
    """Where a browser on this machine reaches a server listening on ``host``."""
    every = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - every interface: loopback is one
    shown = every.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


async def _listen(site: web.TCPSite, host: str, port: int) -> None:
    """Start listening, or say in one sentence why not (a busy port is a setting to change, not a
    crash to print a traceback for)."""
    try:
        await site.start()
    except socket.gaierror:
        raise ConfigError("HOST", host, "is not a host name this machine can resolve") from None
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError("HOST", host, "is not an address of this machine") from None
        if exc.errno == errno.EADDRINUSE:
            problem = "is taken: another program listens there. Stop it, or set PORT to a free port (PORT=0 picks one)"
        elif exc.errno == errno.EACCES:
            problem = "needs privileges this process does not have; use a port above 1023"
        else:
            problem = f"cannot be listened on at {host}: {exc.strerror or exc}"
        raise ConfigError("PORT", str(port), problem) from None


async def run_web(settings: Settings, nats_urls: tuple[str, ...]) -> int:
    """``python -m app web``: serve until SIGTERM or SIGINT."""
    # Listening for the signals before anything else: one arriving during start-up stops the
    # process cleanly once it is up, instead of killing it half-started.
    stopping: asyncio.Future[object] = asyncio.ensure_future(until_signalled())
    await asyncio.sleep(0)

    def announce(url: str) -> None:
        say(f"web listening on {url} (NATS {', '.join(nats_urls)}); Ctrl-C stops it", logger=__name__)

    try:
        await serve_web(settings, nats_urls, until=stopping, on_listening=announce)
    finally:
        stopping.cancel()
    return 0
