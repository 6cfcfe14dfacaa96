"""``python -m app demo``, the main job: a live classroom and its dashboard in one command.

The supervisor starts, in this order, and says so in the terminal as each is up:

1. the embedded nats-server with JetStream (store ``DATA_DIR/nats``, any free port);
2. a worker per metric module of ``agents/`` (``python -m app worker <metric>``) and the
   web process (``python -m app web`` on ``PORT``), side by side;
3. the classroom simulator (``python -m app simulate``): valid events over HTTP ingest, repeats
   and invalid events over NATS ingest, a few late ones;

then prints where the dashboard is and, every few seconds, a status line: events sent per
second, windows closed, late and invalid events (see :mod:`app.demo.status`). Children's output
goes to ``DATA_DIR/logs/<name>.log``.

A child is up when its ``/readyz`` answers 200: a worker's on its ``METRICS_PORT`` (each worker
gets ``0``, so the system picks a free port that nothing else can take first, and the worker
prints where it listens), the web process's on its ``PORT``. The terminal shows each worker's
``/metrics`` URL beside it.

``PORT`` taken by another program: the demo says so and exits before starting anything (a
dashboard that moves to a random port would break bookmarks); ``PORT=0`` picks a free port.

Ctrl-C (SIGINT) or SIGTERM stops everything in the reverse order of dependence: the simulator
(nothing new comes in), the web process (finishes requests and NATS ingest), the workers
(drain, commit, leave the group), then the server (flushes its store). Each gets SIGTERM and a
bounded wait, then SIGKILL; a second Ctrl-C skips the waits. Children run in their own process
groups, so the terminal's Ctrl-C reaches only this supervisor, and the order holds. The data
directory is left consistent: a second run continues from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

import aiohttp

from agents import metric_modules
from app.demo.children import Child, ChildExited
from app.demo.status import Counts, StreamCounts, parse_report, status_line
from app.logs import say
from app.settings import Settings
from bridges.connection import connect
from bridges.server import NatsServer
from tables.errors import StreamsError

__all__ = ["AGENTS", "run_demo"]

T = TypeVar("T")

#: every metric module of agents/ (a metric added there is started too)
AGENTS: Final = tuple(metric_modules())
#: seconds each kind of child may take to start, and to stop after SIGTERM
_START_TIMEOUT: Final = 180.0
_STOP_TIMEOUTS: Final = {"simulator": 10.0, "web": 20.0, "worker": 30.0}
#: what the simulator mixes in, so ingest's dedupe and the dead-letter paths have work
_FAULTS: Final = ("--duplicates", "0.02", "--late", "0.01", "--invalid", "0.01")
#: seconds between two looks at a starting child's /readyz
_READY_POLL: Final = 0.2


def _say(message: str) -> None:
    say(message, logger=__name__)


class _Stopped(Exception):
    """A signal arrived while starting."""


class _Signals:
    """First SIGINT/SIGTERM: stop in order. Second: stop waiting, kill what is left."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _received(self) -> None:
        if not self.stop.is_set():
            _say("\nstopping (Ctrl-C again to kill instead of waiting)")
            self.stop.set()
        elif not self.force.is_set():
            _say("killing what is left")
            self.force.set()

    async def unless_stopped(self, awaitable: Awaitable[T]) -> T:
        """``awaitable``'s result, or :class:`_Stopped` (and it cancelled) if a signal comes first."""
        task = asyncio.ensure_future(awaitable)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise _Stopped
        return task.result()


def port_taken(port: int) -> bool:
    """Something listens on ``port`` (of any interface) already; 0 is never taken."""
    if port == 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the web process will bind: address reuse on, so only a listener makes this fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - where the web process will listen
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class _Demo:
    def __init__(self, settings: Settings, signals: _Signals, *, students: int, rate: float, status_every: float) -> None:
        self.settings = settings
        self.signals = signals
        self.students = students
        self.rate = rate
        self.status_every = status_every
        self.logs = settings.data_dir / "logs"
        self.workers: list[Child] = []
        self.web: Child | None = None
        self.simulator: Child | None = None
        self.report: dict[str, Any] | None = None

    def _child(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        return Child(
            name, [sys.executable, "-m", "app", *args], env=env, log_path=self.logs / f"{name}.log",
            on_line=self._on_simulator_line if name == "simulator" else lambda line: None,
        )

    def _on_simulator_line(self, line: str) -> None:
        report = parse_report(line)
        if report is not None:
            self.report = report

    async def start(self, server: NatsServer) -> str:
        """Workers, web, simulator; the dashboard's URL once all are up."""
        env = {**os.environ, "NATS_URL": server.url, "PYTHONUNBUFFERED": "1"}
        self.workers = [self._child(agent, ["worker", agent], {**env, "METRICS_PORT": "0"}) for agent in AGENTS]
        self.web = self._child("web", ["web"], env)
        for child in (*self.workers, self.web):
            await child.start()

        async def ready(child: Child, pattern: str, what: str) -> str:
            started = time.monotonic()
            url = (await child.wait_for(pattern, _START_TIMEOUT)).group(1)
            await _until_ready(child, url, _START_TIMEOUT - (time.monotonic() - started))
            _say(f"up    {child.name:<12} pid {child.pid:<8} {what.format(url)}  (log {child.log_path})")
            return url

        listening = r"metrics listening on (http://\S+)"
        waits = [asyncio.ensure_future(ready(w, listening, "ready  {0}/metrics")) for w in self.workers]
        waits.append(asyncio.ensure_future(ready(self.web, r"web listening on (http://\S+)", "{0}")))
        try:
            *_, url = await self.signals.unless_stopped(asyncio.gather(*waits))
        finally:
            for wait in waits:  # one failed, or a signal came: the others stop waiting
                wait.cancel()
        self.simulator = self._child(
            "simulator",
            ["simulate", "--url", url, "--ingest", "both", "--students", str(self.students), "--rate", f"{self.rate:g}",
             *_FAULTS, "--json", "--report-every", f"{self.status_every:g}"],
            env,
        )  # fmt: skip
        await self.simulator.start()
        await self.signals.unless_stopped(self.simulator.wait_for(r"simulate: \d+ students", _START_TIMEOUT))
        _say(
            f"up    {'simulator':<12} pid {self.simulator.pid:<8} {self.students} students, {self.rate:g} events/s: "
            f"valid ones over HTTP, repeats and invalid ones over NATS, some late  (log {self.simulator.log_path})"
        )
        return f"{url}/dashboard"

    @property
    def children(self) -> list[Child]:
        return [c for c in (self.simulator, self.web, *self.workers) if c is not None]

    async def watch(self, counts: StreamCounts) -> int:
        """Status lines until a signal (0) or a child's unexpected exit (1)."""
        baseline = await counts.read()
        exits = {child.exited: child for child in self.children}
        stopped = asyncio.ensure_future(self.signals.stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {stopped, *exits}, timeout=self.status_every, return_when=asyncio.FIRST_COMPLETED
                )
                if stopped in done:
                    return 0
                for exited in done:
                    child = exits[exited]
                    _say(f"error: {child.name} exited with code {child.returncode}; its last lines:\n{child.tail()}")
                    return 1
                now: Counts | None
                try:
                    now = await asyncio.wait_for(counts.read(), self.status_every) - baseline
                except Exception:  # noqa: BLE001 - nats-py's errors too: a missed status line is not fatal
                    now = None
                _say(status_line(time.strftime("%H:%M:%S"), self.report, now))
        finally:
            stopped.cancel()

    async def stop(self) -> bool:
        """Simulator, web, then the workers together; True if every one exited cleanly."""
        force = self.signals.force
        clean = True
        steps: list[tuple[str, list[Child], float]] = [
            ("simulator", [self.simulator] if self.simulator else [], _STOP_TIMEOUTS["simulator"]),
            ("web", [self.web] if self.web else [], _STOP_TIMEOUTS["web"]),
            ("workers", self.workers, _STOP_TIMEOUTS["worker"]),
        ]
        for what, children, timeout in steps:
            started = [c for c in children if c.started]
            if not started:
                continue
            codes = await asyncio.gather(*(c.stop(timeout, force=force) for c in started))
            clean = clean and all(code == 0 for code in codes)
            shown = ", ".join(f"{c.name} {code}" for c, code in zip(started, codes, strict=True))
            _say(f"stopped {what} (exit codes: {shown})")
        return clean


async def _until_ready(child: Child, url: str, timeout: float) -> None:
    """Until ``<url>/readyz`` answers 200; :class:`ChildExited` if the child exits first,
    :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
        while True:
            if child.exited.done():
                raise ChildExited(
                    f"{child.name} exited with code {child.returncode} (log {child.log_path}); "
                    f"its last lines:\n{child.tail()}"
                )
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass  # not listening yet, or busy starting: look again
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{child.name} was not ready at {url}/readyz within {timeout:.0f}s (log {child.log_path})"
                )
            await asyncio.sleep(_READY_POLL)


async def run_demo(settings: Settings, *, students: int = 12, rate: float = 10.0, status_every: float = 5.0) -> int:
    """Run until SIGINT or SIGTERM; 0 if everything started and stopped cleanly."""
    if status_every <= 0:
        _say(f"error: --status-every must be > 0 seconds, got {status_every:g}")
        return 2
    if port_taken(settings.port):
        _say(
            f"error: port {settings.port} is taken: another program listens there. Stop it, or run with "
            f"PORT set to a free port (PORT=0 picks one)."
        )
        return 2
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # The server's own start-up log line would repeat the "up" line below in another format.
        logging.getLogger("bridges.server").setLevel(logging.WARNING)
    signals = _Signals()
    signals.install()
    data_dir = settings.data_dir
    _say(f"learning-streams demo: data in {data_dir}/ (logs in {data_dir / 'logs'}/); Ctrl-C stops everything")
    if settings.nats_urls:
        _say("note: NATS_URL is not used by the demo, which runs its own nats-server")
    demo = _Demo(settings, signals, students=students, rate=rate, status_every=status_every)
    code = 0
    try:
        async with NatsServer(data_dir / "nats", port=0) as server:
            _say(f"up    {'nats-server':<12} pid {server.pid:<8} {server.url}  (JetStream store {data_dir / 'nats'})")
            try:
                code = await _serve(demo, server, settings)
            finally:
                if not await demo.stop():
                    code = code or 1
            _say("stopping nats-server")
        _say(f"stopped; the data in {data_dir}/ is kept for the next run")
    except StreamsError as exc:  # the server did not start, NATS unreachable
        _say(f"error: {exc}")
        code = 1
    finally:
        signals.remove()
    return code


async def _serve(demo: _Demo, server: NatsServer, settings: Settings) -> int:
    try:
        url = await demo.start(server)
    except _Stopped:
        return 0
    except (ChildExited, TimeoutError) as exc:
        _say(f"error: {exc}")
        return 1
    window, grace = settings.window_seconds, settings.grace_seconds
    first = (int(time.time()) // window + 1) * window + grace
    _say(
        f"\nDashboard: {url}\n"
        f"Windows of {window} s close {grace} s after they end; the first results arrive at about "
        f"{time.strftime('%H:%M:%S', time.localtime(first))}. Ctrl-C stops everything.\n"
    )
    client = await connect(settings.connection((server.url,), name="learning-streams-demo"))
    try:
        # Counting only: the workers and the web process own the streams' limits.
        return await demo.watch(StreamCounts(client, settings.public_streams(update_limits=False)))
    finally:
        await client.close()
