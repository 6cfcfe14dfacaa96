"""``python -m app web`` as a process: it listens on PORT, and SIGTERM lets requests finish."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.oracle import generate_sessions
from testkit.streams import events_stored, nats_client
from testkit.workers import REPO, WorkerProcess, Workers

pytestmark = pytest.mark.integration

EVENTS = generate_sessions(seed=17, students=10, minutes=5, start_epoch=1_714_557_600)


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer) -> Iterator[Workers]:
    env = {"NATS_URL": nats_server.url, "PORT": "0", "PARTITIONS": "4", "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as pool:
        yield pool


async def start_web(workers: Workers, name: str = "web", **env: str) -> tuple[WorkerProcess, str]:
    web = workers.spawn([sys.executable, "-m", "app", "web"], name=name, **env)
    await web.wait_for_log(r"web listening on http://\S+", timeout=60)
    match = re.search(r"web listening on (http://\S+)", web.log())
    assert match is not None
    return web, match.group(1)


def test_the_cli_lists_the_web_command() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "app", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^\s+web\s+HTTP ingest and query API", shown, re.MULTILINE)


async def test_the_process_serves_on_the_port_it_announces(workers: Workers, nats_server: NatsServer) -> None:
    web, url = await start_web(workers)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/readyz") as response:
            assert response.status == 200
        async with session.post(f"{url}/v1/events", json={"events": EVENTS[:100]}) as response:
            assert (response.status, await response.json()) == (202, {"accepted": 100, "duplicates": 0})
    assert await web.terminate() == 0
    assert "stopped" in web.log()


async def test_the_ingest_token_setting_is_enforced(workers: Workers) -> None:
    web, url = await start_web(workers, INGEST_TOKEN="tok-123")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/events", json=EVENTS[0]) as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer tok-123"}
        async with session.post(f"{url}/v1/events", json=EVENTS[0], headers=headers) as response:
            assert response.status == 202
    assert "tok-123" not in web.log()  # a secret is never printed
    await web.terminate()


async def test_sigterm_lets_an_in_flight_request_finish(workers: Workers, nats_server: NatsServer) -> None:
    web, url = await start_web(workers, LOG_LEVEL="debug")
    batch = EVENTS[:200]
    body = json.dumps({"events": batch}).encode()
    half = len(body) // 2
    signalled = asyncio.Event()

    async def upload() -> AsyncIterator[bytes]:
        yield body[:half]
        await signalled.wait()  # the rest only once the process is shutting down
        yield body[half:]

    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(f"{url}/v1/events", data=upload(), headers={"Content-Type": "application/json"})
        )
        # The handler runs (it logs before reading the body, which is only half sent).
        await web.wait_for_log(r"ingest request: reading a body of unknown bytes", timeout=10)
        web.signal(signal.SIGTERM)
        await web.wait_for_log(r"stopping: finishing in-flight requests", timeout=10)
        signalled.set()
        response = await asyncio.wait_for(request, 30)
        assert (response.status, await response.json()) == (202, {"accepted": len(batch), "duplicates": 0})
        response.release()
    assert await web.wait_exit(30) == 0
    async with nats_client(nats_server.url) as client:
        assert await events_stored(client) == len(batch)


async def test_without_nats_the_process_exits_with_an_error(tmp_path: Path) -> None:
    env = {"NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_DEADLINE": "1", "PORT": "0", "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as pool:
        web = pool.spawn([sys.executable, "-m", "app", "web"], name="web-without-nats")
        assert await web.wait_exit(30) == 1
        assert "cannot connect to NATS at nats://127.0.0.1:1 within 1s" in web.log()


EXPOSED = "is not a loopback address, and"


async def test_a_non_loopback_bind_without_tokens_warns_at_start(workers: Workers) -> None:
    web, url = await start_web(workers, "web-open", HOST="0.0.0.0")  # noqa: S104 - what the test is about
    log = web.log()
    assert "HOST=0.0.0.0 is not a loopback address, and INGEST_TOKEN is not set" in log
    assert "neither READ_TOKEN nor READ_ACCESS is set: anyone who reaches this web process can read" in log
    assert url.startswith("http://127.0.0.1:")  # where a browser here reaches it
    await web.terminate()

    guarded, _ = await start_web(workers, "web-guarded", HOST="0.0.0.0", INGEST_TOKEN="in-tok", READ_TOKEN="read-tok")  # noqa: S104
    loopback, _ = await start_web(workers, "web-loopback")  # HOST defaults to 127.0.0.1
    for quiet in (guarded, loopback):
        assert EXPOSED not in quiet.log()
        assert "in-tok" not in quiet.log() and "read-tok" not in quiet.log()
        await quiet.terminate()


async def test_the_read_settings_reach_the_process(workers: Workers, tmp_path: Path) -> None:
    """READ_TOKEN guards the query API; READ_ACCESS names the deployment's hook, imported at start."""
    web, url = await start_web(workers, "web-token", READ_TOKEN="read-tok")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/v1/metrics/engagement/s1/latest") as response:
            assert response.status == 401
        async with session.get(f"{url}/v1/metrics/engagement/s1/latest", headers={"Authorization": "Bearer read-tok"}) as response:
            assert response.status == 404  # let in: no window yet
    await web.terminate()

    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps({"tok-a": ["s1"]}))
    web, url = await start_web(workers, "web-tenants", READ_ACCESS="tests.apps.tenants:access", TENANTS_FILE=str(tenants))
    async with aiohttp.ClientSession() as session:
        for student, status in (("s1", 404), ("s2", 403)):
            headers = {"Authorization": "Bearer tok-a"}
            async with session.get(f"{url}/v1/metrics/engagement/{student}/latest", headers=headers) as response:
                assert response.status == status, student
    await web.terminate()


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("tests.apps.nowhere:access", "importing tests.apps.nowhere failed: ModuleNotFoundError: No module named 'tests.apps.nowhere'"),
        ("tests.apps.tenants:School", "must name an object with a reader(token) method (an instance, not a class)"),
        ("tests.apps.tenants:nothing", "tests.apps.tenants has no nothing"),
    ],
)
async def test_a_read_access_that_cannot_be_used_is_one_line_and_exit_2(
    workers: Workers, setting: str, says: str
) -> None:
    web = workers.spawn([sys.executable, "-m", "app", "web"], name=f"web-{setting.rsplit(':')[-1]}", READ_ACCESS=setting)
    assert await web.wait_exit(30) == 2
    assert web.log().splitlines()[-1] == f"error: Setting 'READ_ACCESS' has value {setting!r}: {says}"
