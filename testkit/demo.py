"""Running ``python -m app demo`` (or a command that runs it) as a user would, for end-to-end
tests: in a temporary data directory, on a free port, with short windows; and checking
afterwards, by PID, that nothing it started is left."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bridges.server import free_port
from testkit.workers import WorkerProcess

__all__ = ["DemoRun", "demo_env", "descendants", "survivors"]

#: short windows, so several close while a test watches
WINDOW, GRACE = 3, 1


def demo_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "PORT": str(free_port()),
        "METRICS_WINDOW_SECONDS": str(WINDOW),
        "METRICS_GRACE_SECONDS": str(GRACE),
    }


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), or None once it is gone
    (a zombie counts as gone: it runs nothing). With the PID it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, *fields = stat.rsplit(") ", 1)[1].split()
    return None if state == "Z" else fields[18]


def descendants(root: int) -> dict[int, str]:
    """Every live process under ``root`` (children in their own sessions included), by PID."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found and (started := _start_time(pid)) is not None:
                found[pid] = started
                frontier.append(pid)
    return found


def survivors(pids: dict[int, str]) -> list[int]:
    """Those of ``pids`` still running (the same process: same PID and start time)."""
    return [pid for pid, started in pids.items() if _start_time(pid) == started]


@dataclass
class DemoRun:
    """A running demo and what its terminal said."""

    process: WorkerProcess

    @property
    def dashboard(self) -> str:
        match = re.search(r"Dashboard: (http://\S+)", self.process.log())
        assert match, self.process.log()
        return match.group(1)

    @property
    def nats_url(self) -> str:
        match = re.search(r"nats-server\s+pid \d+\s+(nats://\S+)", self.process.log())
        assert match, self.process.log()
        return match.group(1)

    def announced_pids(self) -> set[int]:
        """The PIDs the terminal named (server, workers, web, simulator)."""
        return {int(pid) for pid in re.findall(r"^up\s+\S+\s+pid (\d+)", self.process.log(), re.MULTILINE)}

    def started(self) -> dict[int, str]:
        """Every process the demo started, as far as /proc shows them now."""
        found = descendants(self.process.pid)
        for pid in self.announced_pids():
            if pid not in found and (started := _start_time(pid)) is not None:
                found[pid] = started
        return found

