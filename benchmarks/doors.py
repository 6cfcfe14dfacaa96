"""Issue 14's doors: the web process's memory under the slow-client attack, with its bounds and
without them, and the dashboard's cost per update in a small and a large class.

- **slow clients**: a real ``python -m app web`` is attacked with uploads that send their head
  and just under 1 MiB of body, then stall, and with idle connections (half of them with half a
  request head). Its resident set is read from ``/proc`` before, at the peak and after; the same
  attack runs against a process whose bounds are set out of reach (an hour's deadlines, a cap of
  100,000), which is the door as it was. Deadlines are shortened (seconds, not the defaults' 15
  and 30) so the run is short; the memory held does not depend on them.
- **dashboard**: a class of N students (one engagement and one progression window each, a
  seventh struggling), one open overview page; an update is one new final window of a random
  student: the class takes it, the page computes its patches and encodes them for its stream.
  The median over many updates, at 200 and 20,000 students.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from app.access import EVERY_STUDENT
from app.dashboard.overview import OverviewView
from app.dashboard.state import ClassState
from benchmarks.report import Row, Target
from testkit.oracle import generate_sessions
from testkit.slow_clients import attack
from testkit.workers import REPO

__all__ = ["AttackResult", "UpdateCost", "dashboard_update_cost", "run_doors", "slow_client_attack"]

#: the bounds of the "before" process: out of reach, as if there were none
UNBOUNDED = {"HTTP_IDLE_SECONDS": "3600", "HTTP_BODY_SECONDS": "3600", "INGEST_CONCURRENCY": "100000"}
BOUNDED = {"HTTP_IDLE_SECONDS": "3", "HTTP_BODY_SECONDS": "5"}  # and INGEST_CONCURRENCY's default
_SENT = 1024 * 1024 - 16 * 1024  # "stalled just short of 1 MiB"


@dataclass(frozen=True)
class AttackResult:
    idle_mb: float
    peak_mb: float
    after_mb: float
    #: stalled connections the server closed during the run, of all
    closed: int
    clients: int
    #: seconds until the last one was closed (None: some were still open when the run ended)
    last_closed: float | None
    #: a normal upload's answer time during the attack, seconds (None: it was not answered)
    normal: float | None


@dataclass(frozen=True)
class UpdateCost:
    students: int
    median_us: float
    bytes: int


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


@contextmanager
def _web(nats_url: str, data_dir: Path, extra: dict[str, str]) -> Iterator[tuple[int, str]]:
    env = {**os.environ, "NATS_URL": nats_url, "PORT": "0", "DATA_DIR": str(data_dir), "LOG_LEVEL": "warning",
           "PYTHONUNBUFFERED": "1", **extra}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "web"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"web listening on (http://\S+)", line)
        if found is None:
            raise RuntimeError(f"the web process did not start: {line!r}")
        yield process.pid, found.group(1)
    finally:
        process.terminate()
        process.wait(30)


async def slow_client_attack(
    nats_url: str, data_dir: Path, *, bounded: bool, uploads: int, idle: int, watch: float
) -> AttackResult:
    """The attack on a fresh web process for ``watch`` seconds at most (until every connection is closed)."""
    with _web(nats_url, data_dir, BOUNDED if bounded else UNBOUNDED) as (pid, url):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        events = generate_sessions(seed=14, students=3, minutes=1, start_epoch=1_714_557_600)[:10]
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/v1/events", json={"events": events}) as response:
                assert response.status == 202, response.status
            idle_mb = peak = _rss_mb(pid)
            started = time.monotonic()
            async with attack(host, int(port), uploads=uploads, sent=_SENT, idle=idle) as clients:
                normal: float | None = None
                deadline = started + watch
                while time.monotonic() < deadline and not all(task.done() for task in clients):
                    peak = max(peak, _rss_mb(pid))
                    if normal is None and time.monotonic() - started > 1.0:  # once the attack is on
                        asked = time.monotonic()
                        try:
                            async with http.post(
                                f"{url}/v1/events", json={"events": events}, timeout=aiohttp.ClientTimeout(total=10)
                            ) as response:
                                normal = time.monotonic() - asked if response.status == 202 else None
                        except (aiohttp.ClientError, TimeoutError):
                            normal = None
                    await asyncio.wait(clients, timeout=0.2)
                closed = sum(task.done() for task in clients)
                last = time.monotonic() - started if closed == len(clients) else None
                after = _rss_mb(pid)
    return AttackResult(idle_mb, peak, after, closed, len(clients), last, normal)


def _window(metric: str, student: str, start: int, struggling: bool) -> tuple[str, bytes]:
    correct = 1 if struggling else 9
    values = (
        {"answers": 10, "correct": correct, "accuracy": correct / 10, "active_seconds": 30.0, "sessions": 1}
        if metric == "engagement"
        else {"levels_completed": 2, "levels_failed": 0, "completion_rate": 1.0, "max_level": 3, "score": 10}
    )
    return f"{metric}.{student}.{start}", json.dumps({"final": True, "values": values}).encode()


def dashboard_update_cost(students: int, updates: int, *, seed: int = 14) -> UpdateCost:
    """The median cost of one update of the class and one open overview page."""
    state = ClassState(limit=max(students, 1))
    ids = [f"s{number:06d}" for number in range(students)]
    for number, student in enumerate(ids):
        for metric in ("engagement", "progression"):
            key, raw = _window(metric, student, 0, number % 7 == 0)
            state.apply(key, metric, student, None, 0, raw)
    view = OverviewView(state, EVERY_STUDENT)
    view.snapshot()
    rng = random.Random(seed)
    times, sent = [], 0
    for update in range(1, updates + 1):
        student = rng.choice(ids[:100])  # on the open page: its row is rendered too, as for the old page
        key, raw = _window("engagement", student, 60 * update, rng.random() < 0.15)
        began = time.perf_counter()
        changed = state.apply(key, "engagement", student, None, 60 * update, raw)
        patches = view.patches(set(changed))
        data = "".join(f"event: patch\ndata: {json.dumps(patch)}\n\n" for patch in patches).encode()
        times.append(time.perf_counter() - began)
        sent += len(data)
    return UpdateCost(students, statistics.median(times) * 1e6, sent // updates)


async def run_doors(
    nats_url: str, data_dir: Path, *, uploads: int, idle: int, watch: float, updates: int
) -> tuple[list[Row], list[Target]]:
    """The stage's rows and targets: the attack without bounds and with, then the dashboard."""
    before = await slow_client_attack(
        nats_url, data_dir / "before", bounded=False, uploads=uploads, idle=idle, watch=watch
    )
    after = await slow_client_attack(
        nats_url, data_dir / "after", bounded=True, uploads=uploads, idle=idle, watch=watch
    )
    small, large = (dashboard_update_cost(students, updates) for students in (200, 20_000))
    stage, attack_shape = (
        "doors (issue 14)",
        f"{uploads} uploads stalled at {_SENT // 1024} KiB, {idle} idle connections",
    )

    def closed(result: AttackResult) -> str:
        when = f"all closed after {result.last_closed:.1f} s" if result.last_closed is not None else "not all closed"
        answered = f"{result.normal * 1000:.0f} ms" if result.normal is not None else "not answered"
        return (
            f"{result.closed} of {result.clients} closed by the server within {watch:g} s ({when}); "
            f"a normal upload meanwhile: {answered}; RSS {result.idle_mb:.0f} MB before, {result.after_mb:.0f} MB after"
        )

    rows = [
        Row("doors-rss-unbounded", stage, f"web RSS peak, {attack_shape}, no bounds", before.peak_mb, "MB",
            before.peak_mb / before.idle_mb, "idle web process", "deadlines of an hour, no cap; " + closed(before)),
        Row("doors-rss-bounded", stage, f"web RSS peak, {attack_shape}, bounded", after.peak_mb, "MB",
            after.peak_mb / before.peak_mb, "the same without bounds",
            f"HTTP_BODY_SECONDS={BOUNDED['HTTP_BODY_SECONDS']}, HTTP_IDLE_SECONDS={BOUNDED['HTTP_IDLE_SECONDS']}, "
            f"INGEST_CONCURRENCY 16; {after.peak_mb / after.idle_mb:.2f}x its idle RSS; " + closed(after)),
        Row("dashboard-update-200", stage, "dashboard update, 200 students, one open page", small.median_us, "us",
            None, "200 students", f"median of {updates} updates: apply, patches, SSE encoding; {small.bytes} bytes sent"),
        Row("dashboard-update-20000", stage, "dashboard update, 20,000 students, one open page", large.median_us, "us",
            large.median_us / small.median_us, "200 students",
            f"median of {updates} updates; {large.bytes} bytes sent per update (vs {small.bytes})"),
    ]  # fmt: skip
    ratio = large.median_us / small.median_us
    growth = (after.peak_mb - after.idle_mb) / max(before.peak_mb - before.idle_mb, 1.0)
    targets = [
        Target("web RSS growth under the slow-client attack, bounded / unbounded", growth, "< 0.5",
               growth < 0.5 and after.last_closed is not None),
        Target("dashboard update cost, 20,000 / 200 students", ratio, "~1 (< 2)", ratio < 2),
    ]  # fmt: skip
    return rows, targets
