"""``python -m app demo`` beyond the happy path: a taken port is refused before anything starts,
a second run continues from the first run's data, and a child that dies takes the demo down
cleanly with its last lines shown. (The dashboard in a browser and Ctrl-C leaving nothing behind
are in tests/browser/test_demo_dashboard.py.)"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from pathlib import Path

import nats
import pytest

from testkit.demo import DemoRun, demo_env, survivors
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DEMO = [sys.executable, "-m", "app", "demo", "--students", "4", "--rate", "15", "--status-every", "1"]


async def kv_keys(url: str) -> set[str]:
    client = await nats.connect(url)
    try:
        return set(await (await client.jetstream().key_value("metrics")).keys())
    finally:
        await client.close()


def windows_closed(log: str) -> int:
    counts = re.findall(r"windows closed (\d+)", log)
    return int(counts[-1]) if counts else 0


async def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    with socket.socket() as squatter, Workers(tmp_path / "logs", env) as pool:
        squatter.bind(("0.0.0.0", int(env["PORT"])))  # noqa: S104 - taken on every interface
        squatter.listen()
        process = pool.spawn(DEMO, name="demo")
        assert await process.wait_exit(60) == 2
    assert f"error: port {env['PORT']} is taken" in process.log()
    assert "PORT=0 picks one" in process.log()
    assert not (tmp_path / "data" / "nats").exists()  # no server was started


async def test_a_second_run_continues_from_the_data_and_a_dying_child_stops_the_demo(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    with Workers(tmp_path / "logs", env) as pool:
        first = pool.spawn(DEMO, name="first")
        await first.wait_for_log(r"Dashboard: http://\S+", timeout=180)
        run = DemoRun(first)
        await poll_until(lambda: windows_closed(first.log()) >= 4, timeout=60, what="windows to close")
        kept = await kv_keys(run.nats_url)
        assert kept
        os.killpg(first.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: its whole group
        assert await first.wait_exit(120) == 0, first.log()

        second = pool.spawn(DEMO, name="second")
        await second.wait_for_log(r"Dashboard: http://\S+", timeout=180)
        run = DemoRun(second)
        assert kept <= await kv_keys(run.nats_url), "the second run lost the first run's results"
        started = run.started()
        web_pid = int(re.search(r"^up\s+web\s+pid (\d+)", second.log(), re.MULTILINE).group(1))  # type: ignore[union-attr]
        os.kill(web_pid, signal.SIGKILL)
        assert await second.wait_exit(120) == 1
        log = second.log()
        assert "error: web exited with code -9" in log
        assert "stopped workers" in log and "stopped; the data in" in log
        assert survivors(started) == []
