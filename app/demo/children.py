"""The demo's child processes: started in their own sessions, logged to files, stopped by PID.

Each child runs in a new session (so its own process group): a Ctrl-C in the terminal reaches
only the supervisor, which then stops the children in the order it chooses. Their output (stdout
and stderr) is copied line by line into ``<logs>/<name>.log``, and the supervisor can wait for a
line to appear (where a worker's ``/metrics`` listens, the web process's URL) with a deadline
instead of polling a file.

Stopping is SIGTERM to the child, a bounded wait, then SIGKILL to the child's process group:
the group the supervisor created for it, so nothing else is ever signalled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from tables.errors import BrokenError, ClosedError

__all__ = ["Child", "ChildExited"]

_CHUNK: Final = 64 * 1024
_TAIL: Final = 40


class ChildExited(BrokenError):
    """A child exited while something was expected of it; the message ends with its last lines."""


class Child:
    """One child process of the demo.

    Args:
        name: what the terminal and the log file call it.
        argv: the command.
        env: its whole environment.
        log_path: where its output goes (appended: a second run's log follows the first's).
        on_line: called with every line it prints (the simulator's reports).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        on_line: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env)
        self._on_line = on_line
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[str] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._exited: asyncio.Task[int] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
        self._watchers: list[tuple[re.Pattern[str], asyncio.Future[re.Match[str]]]] = []

    # -- state ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ClosedError(f"{self.name} has not been started")
        return self._process.pid

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    @property
    def exited(self) -> asyncio.Task[int]:
        """Done when the process has exited; its result is the exit code."""
        if self._exited is None:
            raise ClosedError(f"{self.name} has not been started")
        return self._exited

    def tail(self) -> str:
        """Its last lines of output, for an error message."""
        return "\n".join(f"    {line}" for line in self._tail)

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> Child:
        if self._process is not None:
            raise ClosedError(f"{self.name} was started already")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = asyncio.create_task(self._copy_output(), name=f"{self.name}-output")
        self._exited = asyncio.create_task(self._process.wait(), name=f"{self.name}-exit")
        return self

    async def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line matching ``pattern`` (seen already, or to come).

        Raises :class:`ChildExited` if the process exits first, :class:`TimeoutError` after
        ``timeout`` seconds.
        """
        regex = re.compile(pattern)
        for line in self._tail:
            if match := regex.search(line):
                return match
        future: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        self._watchers.append((regex, future))
        try:
            waits: set[asyncio.Future[Any]] = {future, self.exited}
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if future in done:
                return future.result()
            if self.exited in done:
                await self._drain_output()
                if future.done():
                    return future.result()
                raise ChildExited(
                    f"{self.name} exited with code {self.returncode} (log {self.log_path}); its last lines:\n{self.tail()}"
                )
            raise TimeoutError(f"{self.name} did not print /{pattern}/ within {timeout:.0f}s (log {self.log_path})")
        finally:
            self._watchers = [(r, f) for r, f in self._watchers if f is not future]
            future.cancel()

    async def stop(self, timeout: float, *, force: asyncio.Event | None = None) -> int | None:
        """SIGTERM, wait up to ``timeout`` (or until ``force`` is set), then SIGKILL its group.

        Returns the exit code (negative: the signal that ended it). Idempotent.
        """
        if self._process is None:
            return None
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            waits: set[asyncio.Future[Any]] = {self.exited}
            forced = asyncio.ensure_future(force.wait()) if force is not None else None
            if forced is not None:
                waits.add(forced)
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if forced is not None:
                    forced.cancel()
        if self.running:
            self.kill()
        code = await self.exited
        await self._drain_output()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        """SIGKILL the child's process group (the child and anything it started)."""
        if self._process is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)

    # -- output ---------------------------------------------------------------------------

    async def _drain_output(self) -> None:
        if self._pump is not None:
            # The pipe ends once the process (and whatever inherited it) is gone.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), 5.0)

    async def _copy_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        pending = b""
        while chunk := await stream.read(_CHUNK):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._line(raw.decode("utf-8", errors="replace"))
        if pending:
            self._line(pending.decode("utf-8", errors="replace"))

    def _line(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()
        self._tail.append(line)
        for regex, future in self._watchers:
            if not future.done() and (match := regex.search(line)):
                future.set_result(match)
        self._on_line(line)
