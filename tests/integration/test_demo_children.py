"""The demo's child processes: lines waited for, output logged, and stopping by PID that
always ends with the child and what it started gone."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from app.demo.children import Child, ChildExited
from app.demo.supervisor import port_taken
from bridges.server import free_port
from testkit.workers import poll_until


def child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-u", "-c", code], env=dict(os.environ), log_path=tmp_path / f"{name}.log")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_line_is_waited_for_and_logged(tmp_path: Path) -> None:
    lines: list[str] = []
    c = Child("talker", [sys.executable, "-u", "-c", "import time; print('hello'); print('ready on http://x:1'); time.sleep(600)"],
              env=dict(os.environ), log_path=tmp_path / "talker.log", on_line=lines.append)  # fmt: skip
    await c.start()
    try:
        match = await c.wait_for(r"ready on (http://\S+)", 10)
        assert match.group(1) == "http://x:1"
        assert (await c.wait_for(r"hello", 1)).group(0) == "hello"  # seen before: found at once
    finally:
        code = await c.stop(5)
    assert code == -15  # SIGTERM ended it
    assert (tmp_path / "talker.log").read_text().splitlines()[:2] == ["hello", "ready on http://x:1"]
    assert lines[:2] == ["hello", "ready on http://x:1"]


async def test_exiting_before_the_line_is_an_error_with_the_last_lines(tmp_path: Path) -> None:
    c = await child(tmp_path, "quitter", "print('cannot start: port taken'); raise SystemExit(3)").start()
    with pytest.raises(ChildExited, match=r"quitter exited with code 3[\s\S]*cannot start: port taken"):
        await c.wait_for(r"ready", 10)
    assert await c.stop(1) == 3


async def test_a_child_ignoring_sigterm_is_killed_with_what_it_started(tmp_path: Path) -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('grandchild', p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    c = await child(tmp_path, "stubborn", code).start()
    grandchild = int((await c.wait_for(r"grandchild (\d+)", 10)).group(1))
    assert await c.stop(0.5) == -9
    assert not alive(c.pid)
    await poll_until(lambda: not alive(grandchild), timeout=10, what="the grandchild to be gone")


async def test_force_skips_the_wait(tmp_path: Path) -> None:
    c = await child(tmp_path, "slow", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up')\ntime.sleep(600)").start()
    await c.wait_for("up", 10)
    force = asyncio.Event()
    force.set()
    assert await asyncio.wait_for(c.stop(60, force=force), 10) == -9


async def test_stop_is_idempotent_and_a_child_starts_once(tmp_path: Path) -> None:
    c = await child(tmp_path, "brief", "print('done')").start()
    assert await c.exited == 0
    assert await c.stop(5) == 0
    assert await c.stop(5) == 0
    with pytest.raises(Exception, match="started already"):
        await c.start()


def test_a_port_is_taken_only_while_something_listens_there() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert port_taken(listener.getsockname()[1])
    assert not port_taken(free_port())
    assert not port_taken(0)
