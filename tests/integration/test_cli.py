"""``python -m app`` as a user meets it when something is wrong: one clear line, the right exit
status, and no waiting for a NATS that will never matter.

No nats-server: where a command would reach for NATS, ``NATS_URL`` names a closed port with a
long connect deadline, so a command that waited for it would time out the test.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridges.server import NatsServer, free_port
from testkit.workers import REPO

pytestmark = pytest.mark.integration


def run_app(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO, env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def unreachable_nats(tmp_path: Path) -> dict[str, str]:
    return {
        "NATS_URL": f"nats://127.0.0.1:{free_port()}", "NATS_CONNECT_DEADLINE": "600",
        "DATA_DIR": str(tmp_path / "data"),
    }


def test_a_mistyped_agent_is_reported_at_once_with_the_available_ones(tmp_path: Path) -> None:
    done = run_app("worker", "engagment", env=unreachable_nats(tmp_path), timeout=20)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: Argument 'agent' has value 'engagment': unknown agent; known: engagement, outcomes, "
        "progression, or a path to a .py file (did you mean engagement?)"
    ]


def test_a_nats_url_with_a_foreign_scheme_is_one_line_naming_nats_url(tmp_path: Path) -> None:
    done = run_app("web", env={"NATS_URL": "http://localhost:4222", "DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: Setting 'NATS_URL' has value 'http://localhost:4222': http:// is not a NATS scheme")


async def test_web_on_a_busy_port_says_so_in_one_line_and_exits_2(tmp_path: Path, nats_server: NatsServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"NATS_URL": nats_server.url, "PORT": str(port), "DATA_DIR": str(tmp_path / "data")}
        done = await asyncio.to_thread(run_app, "web", env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: Setting 'PORT' has value '{port}': is taken: another program listens there. "
        "Stop it, or set PORT to a free port (PORT=0 picks one)"
    )


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("worker", "NATS: the servers of NATS_URL, or nats://127.0.0.1:4222 when it is unset"),
        ("web", "NATS: the servers of NATS_URL, or nats://127.0.0.1:4222 when it is unset"),
        ("simulate", "--nats-url wins over NATS_URL; the servers of NATS_URL, or nats://127.0.0.1:4222"),
        ("demo", "Start a nats-server of its own (any free port, store in DATA_DIR/nats; NATS_URL is not used)"),
        ("nats", "NATS_URL is not read by this command"),
    ],
)
def test_each_command_s_help_says_how_it_finds_nats(command: str, says: str) -> None:
    shown = " ".join(run_app(command, "--help", env={"COLUMNS": "1000"}).stdout.split())
    assert says in shown
    if command in ("worker", "web", "simulate"):
        assert "this command starts no nats-server of its own" in shown


def test_the_settings_in_help_do_not_promise_an_embedded_server() -> None:
    shown = run_app("--help", env={"COLUMNS": "400"}).stdout
    (line,) = [line for line in shown.splitlines() if line.strip().startswith("NATS_URL ")]
    assert "unset: nats://127.0.0.1:4222, where `python -m app nats` listens (the demo runs its own)" in line
