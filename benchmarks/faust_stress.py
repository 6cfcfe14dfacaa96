"""faust-streaming's own table stress test, run against the nats:// transport (an outside check).

faust's repository ships ``tests/stress``: a tables app whose leader sends, per partition, the
numbers 0, 1, 2, ...; an agent keeps the last number per partition in a faust table and logs
"Found duplicate number" when a number is not above the previous one (double counting) and
"Sequence gap" when one was skipped (a lost update). This script runs that app — copied at run
time from a checkout of faust, nothing of faust's is committed here — as several worker
processes against an embedded nats-server, signals them at random (SIGTERM, SIGINT, SIGKILL;
only the processes it started, by PID) and restarts them, then counts what the app reported.

The suite needs packages this project does not depend on, so run it from a scratch venv::

    git clone https://github.com/faust-streaming/faust /tmp/faust
    python3 -m venv /tmp/stress && /tmp/stress/bin/pip install -e . raven raven-aiohttp \\
        envoy setproctitle 'jinja2<3.1'
    /tmp/stress/bin/python -m benchmarks.faust_stress --faust-repo /tmp/faust --minutes 5

faust tables are at-least-once, so after SIGKILL some numbers are legitimately counted twice
(the app's "duplicate" check); gaps — updates lost — are what must stay at zero.

Time plays no part: faust's app keeps plain tables (no windows), and this project's arrival
time and arrival clock belong to its own windowed agents, which the stress app does not use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bridges.server import NatsServer

APP = "t.stress.tests.tables.app"
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)


@dataclass
class Report:
    minutes: float
    workers: int
    signals: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    duplicates: int = 0
    gaps: int = 0
    tracebacks: int = 0

    def lines(self) -> list[str]:
        sent = ", ".join(f"{n} {name}" for name, n in sorted(self.signals.items()))
        return [
            f"faust tests/stress tables app on nats://: {self.workers} workers for {self.minutes:g} min",
            f"signals sent: {sent or 'none'}",
            f"numbers counted (table value summed over partitions): {self.processed}",
            f"duplicates reported (counted twice after a kill; tables are at-least-once): {self.duplicates}",
            f"sequence gaps reported (lost updates): {self.gaps}",
            f"tracebacks in worker logs: {self.tracebacks}",
        ]


def prepare(faust_repo: Path, workdir: Path) -> Path:
    """Lay the suite out as the package ``t.stress`` it imports itself as."""
    source = faust_repo / "tests" / "stress"
    if not (source / "tests" / "tables" / "app.py").is_file():
        raise SystemExit(f"{source} is not faust's tests/stress")
    package = workdir / "t"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copytree(source, package / "stress")
    # The suite imports raven_aiohttp only to ship errors to Sentry (unused here: no SENTRY_DSN),
    # and that package still uses asyncio.coroutine, gone since Python 3.11. A stand-in keeps the
    # import working without touching the test's logic.
    try:
        import raven_aiohttp  # noqa: F401
    except (ImportError, AttributeError):
        (workdir / "raven_aiohttp.py").write_text("class AioHttpTransport:\n    pass\n")
    return workdir


async def run(faust_repo: Path, minutes: float, workers: int, seed: int) -> Report:
    rng = random.Random(seed)
    report = Report(minutes=minutes, workers=workers)
    with tempfile.TemporaryDirectory() as scratch:
        root = prepare(faust_repo, Path(scratch))
        logs = Path(scratch) / "logs"
        logs.mkdir()
        async with NatsServer(Path(scratch) / "nats") as server:
            env = {
                **os.environ,
                "PYTHONPATH": str(root),
                "STRESS_BROKER": f"{server.url}?session_timeout=4",
                "STRESS_STORE": "tracked-memory://",
                "STRESS_PARTITIONS": "4",
            }
            processes: list[subprocess.Popen[bytes]] = []
            started = 0

            def start() -> subprocess.Popen[bytes]:
                nonlocal started
                started += 1
                log = open(logs / f"worker-{started}.log", "wb")  # noqa: SIM115 - the child owns it
                process = subprocess.Popen(
                    [sys.executable, "-m", "faust", "-A", APP, "worker", "-l", "info", "--without-web"],
                    env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
                log.close()
                return process

            try:
                processes = [start() for _ in range(workers)]
                deadline = time.monotonic() + minutes * 60
                while time.monotonic() < deadline:
                    await asyncio.sleep(rng.uniform(3.0, 15.0))
                    victim = rng.choice(processes)
                    sig = rng.choice(SIGNALS)
                    if victim.poll() is None:
                        victim.send_signal(sig)
                        report.signals[sig.name] = report.signals.get(sig.name, 0) + 1
                        await asyncio.to_thread(_wait, victim, 30.0)
                    processes[processes.index(victim)] = start()
            finally:
                for process in processes:
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
                for process in processes:
                    await asyncio.to_thread(_wait, process, 30.0)
            report.processed = sum((await _table_values(server.url, 4)).values())
        for path in logs.glob("*.log"):
            text = path.read_text(errors="replace")
            report.duplicates += text.count("Found duplicate number")
            report.gaps += len(re.findall(r"Sequence gap for tp", text))
            report.tracebacks += text.count("Traceback (most recent call last)")
    return report


async def _table_values(url: str, partitions: int) -> dict[int, int]:
    """The number each partition reached: the app's table, read from its changelog."""
    import json

    import nats
    from nats.js.errors import NotFoundError

    from bridges.naming import Naming

    naming, topic = Naming(), "f-stress-tables-v7-counted-changelog"
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        out = {}
        for partition in range(partitions):
            try:
                msg = await js.get_last_msg(
                    naming.stream(topic, partition), naming.key_subject(topic, partition, str(partition).encode())
                )
            except NotFoundError:
                continue
            out[partition] = json.loads(msg.data or b"null")
        return out
    finally:
        await client.close()


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faust-repo", type=Path, required=True, help="a checkout of faust-streaming")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(run(args.faust_repo, args.minutes, args.workers, args.seed))
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
