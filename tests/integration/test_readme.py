"""The README's commands are the ones that work: the quick start is run as written (``./dev run``
until Ctrl-C, ``./dev test`` on a few tests), every other command it shows and every Procfile
line is one the CLI accepts, and the process types it names exist."""

from __future__ import annotations

import os
import re
import shlex
import signal
from pathlib import Path

import aiohttp
import pytest

from app.cli import main
from app.settings import Settings
from app.worker import agent_names
from testkit.demo import DemoRun, demo_env, survivors
from testkit.workers import REPO, Workers

README = (REPO / "README.md").read_text(encoding="utf-8")
PROCFILE = (REPO / "Procfile").read_text(encoding="utf-8")
METRIC_AGENTS = {"progression", "engagement", "outcomes"}


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.MULTILINE | re.DOTALL)
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def commands(text: str) -> list[str]:
    """The commands of the ``sh`` blocks in ``text``, comments left out."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command:
                found.append(command)
    return found


QUICK_START = commands(section("Quick start: two commands"))


def test_the_quick_start_is_two_commands() -> None:
    assert QUICK_START == ["./dev run", "./dev test"]


def cli_accepts(command: str) -> None:
    """Parse ``command`` as the CLI would (``--help`` ends the parse before anything runs)."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    if words[0] == "env":
        words = words[1:]
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    Settings.from_env(env)  # the settings it sets are valid ones
    if words[:2] == ["./dev", "run"]:
        argv = ["demo", *words[2:]]
    else:
        # The README runs the venv's python; the Procfile whichever `python` is on PATH.
        assert words[:3] in ([".venv/bin/python", "-m", "app"], ["python", "-m", "app"]), command
        argv = words[3:]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0, command


def procfile() -> dict[str, str]:
    return dict(
        line.split(": ", 1) for line in PROCFILE.splitlines() if line.strip() and not line.startswith("#")
    )


def test_the_procfile_has_nats_web_each_metric_agent_and_a_simulator() -> None:
    types = procfile()
    assert set(types) == {"nats", "web", "simulator", *METRIC_AGENTS}
    assert METRIC_AGENTS <= set(agent_names())
    for command in types.values():
        cli_accepts(command)
    assert "--url http://127.0.0.1:8080" in types["simulator"] and "PORT=8080" in types["web"]


def test_every_other_command_the_readme_shows_is_one_that_works() -> None:
    shown = [c for c in commands(README) if c not in QUICK_START]
    assert len(shown) >= 6
    for command in shown:
        if command.startswith("honcho "):
            counts = re.findall(r"-c (\w+)=\d+", command)
            assert set(counts) <= set(procfile()), command
            assert shlex.split(command)[:2] == ["honcho", "start"]
        else:
            cli_accepts(command)


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_quick_start_run_starts_the_demo_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with Workers(tmp_path / "logs", demo_env(tmp_path)) as pool:
        process = pool.spawn(shlex.split(QUICK_START[0]), name="dev-run")
        await process.wait_for_log(r"Dashboard: http://\S+", timeout=180)
        demo = DemoRun(process)
        started = demo.started()
        async with aiohttp.ClientSession() as session, session.get(demo.dashboard) as response:
            assert response.status == 200 and "Classroom" in await response.text()
        await process.wait_for_log(r"events \d+\.\d/s", timeout=30)  # the status line
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        assert await process.wait_exit(120) == 0, process.log()
        assert "stopped; the data in" in process.log()
        assert survivors(started) == []


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_quick_start_test_runs_the_suite_through_the_same_script(tmp_path: Path) -> None:
    with Workers(tmp_path / "logs", {}) as pool:
        # The same command, narrowed to one small file: the whole suite would run itself.
        process = pool.spawn([*shlex.split(QUICK_START[1]), "-q", "-p", "no:cacheprovider", "tests/unit/app/demo/test_status.py"])
        assert await process.wait_exit(240) == 0, process.log()
        assert re.search(r"\d+ passed", process.log())
