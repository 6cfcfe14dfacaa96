"""Real worker subprocesses for integration tests.

Every process a test starts is tracked by PID and killed (SIGKILL) when the :class:`Workers`
context ends, whatever happened; nothing else is ever signalled. Waiting is done by polling, the
process's log or its ``/readyz``, with a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["WorkerProcess", "Workers", "forget_started_logs", "poll_until", "read_jsonl", "started_log_tails"]

REPO = Path(__file__).resolve().parents[1]

#: the log of every worker started since :func:`forget_started_logs`, for a failing test's report
_started_logs: list[Path] = []


def forget_started_logs() -> None:
    """Start a new list of logs (called before each test)."""
    _started_logs.clear()


def started_log_tails(lines: int = 25) -> str:
    """The last ``lines`` lines of each worker log started since :func:`forget_started_logs`.

    A test that times out in CI leaves its logs on a machine nobody can look at; these ends (a
    traceback, the last progress line, a worker that stopped counting) are what tells a hang
    from a slow machine.
    """
    parts = []
    for path in _started_logs:
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
        parts.append("\n".join([f"--- {path.name}", *text]))
    return "\n".join(parts)


async def poll_until(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def read_jsonl(path: Path) -> list[Any]:
    """Complete JSON lines of a file (a process killed mid-write leaves a partial last line)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class WorkerProcess:
    """One worker subprocess with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _started_logs.append(self.log_path)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    async def wait_for_log(self, pattern: str, *, timeout: float = 30.0, count: int = 1) -> None:
        def seen() -> bool:
            if self.process is not None and self.process.poll() is not None and self.log_count(pattern) < count:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before logging {pattern!r}:\n"
                    + self.log()[-4000:]
                )
            return self.log_count(pattern) >= count

        try:
            await poll_until(seen, timeout=timeout, what=f"{self.name} to log {pattern!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log of {self.name} ---\n{self.log()[-4000:]}") from None

    async def metrics_url(self, *, timeout: float = 60.0) -> str:
        """The base URL of a metric worker's ``/metrics``, ``/healthz`` and ``/readyz``.

        Started with ``METRICS_PORT=0``, the worker binds a port the system picks and prints
        where it listens; a port chosen here and handed over could be taken by another process
        (another test's) before the worker binds it.
        """
        assert "METRICS_PORT" in self.env, f"{self.name} was started without METRICS_PORT: it serves no /readyz"
        pattern = r"metrics listening on (http://\S+)"
        await self.wait_for_log(pattern, timeout=timeout)
        return re.findall(pattern, self.log())[-1]

    async def probe(self, path: str, *, timeout: float = 2.0) -> int:
        """The status ``GET <metrics url><path>`` answers, 0 if nothing answers."""
        url = await self.metrics_url()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
                async with http.get(f"{url}{path}") as response:
                    return response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0

    async def wait_ready(self, *, timeout: float = 90.0) -> None:
        """Until the worker's ``/readyz`` answers 200: its partitions assigned and recovered."""
        deadline = time.monotonic() + timeout
        await self.metrics_url(timeout=timeout)

        async def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode} before it was ready")
            return await self.probe("/readyz") == 200

        try:
            left = max(0.0, deadline - time.monotonic())
            await poll_until(ready, timeout=left, interval=0.1, what=f"{self.name}'s /readyz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log of {self.name} ---\n{self.log()[-4000:]}") from None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        process = self.process
        await poll_until(lambda: process.poll() is not None, timeout=timeout, what=f"{self.name} to exit")
        return int(process.returncode)

    async def terminate(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait_exit(10.0)


class Workers:
    """Starts worker subprocesses and guarantees they are gone afterwards."""

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.started: list[WorkerProcess] = []
        self._counter = 0

    def faust(self, module: str, *, name: str | None = None, **env: str) -> WorkerProcess:
        """``faust -A <module> worker`` — faust's own CLI, as a user would run it.

        Without faust's web server: its CLI forces one on the fixed port 6066 otherwise, and
        workers started side by side would collide.
        """
        argv = [sys.executable, "-m", "faust", "-A", module, "worker", "-l", "info", "--without-web"]
        return self.spawn(argv, name=name, **env)

    def spawn(self, argv: Sequence[str], *, name: str | None = None, **env: str) -> WorkerProcess:
        self._counter += 1
        name = name or f"worker{self._counter}"
        # faust keeps a data directory per app, by default beside the caller's working directory;
        # each worker gets its own under the run's directory, so nothing lands in the checkout.
        defaults = {"WORKER_NAME": name, "APP_DATADIR": str(self.base_dir / f"{name}-data")}
        worker = WorkerProcess(name, argv, {**self.env, **defaults, **env}, self.base_dir / f"{name}.log")
        self.started.append(worker)
        return worker.start()

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(self.started)

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.alive():
                os.kill(worker.pid, signal.SIGKILL)
                worker.process.wait(10)  # type: ignore[union-attr]

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill_all()
