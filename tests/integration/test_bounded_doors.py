"""The web process's doors under slow and greedy clients (issue 14), against the real process:
stalled uploads and idle connections are closed within their deadlines while a normal request is
answered, and ingest requests and dashboard streams beyond their caps get 503 with Retry-After.

The deadlines are small (settings), so the test is quick, and the attack is larger than the caps,
so the bounds must bite: 200 stalled uploads against a cap of 8, 50 idle connections.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.oracle import generate_sessions
from testkit.slow_clients import Closed, attack, stalled_upload
from testkit.workers import WorkerProcess, Workers, poll_until

pytestmark = pytest.mark.integration

IDLE_SECONDS = 1.0
BODY_SECONDS = 2.0
INGEST_CONCURRENCY = 8
DASHBOARD_STREAMS = 2
EVENTS = generate_sessions(seed=14, students=3, minutes=2, start_epoch=1_714_557_600)


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer) -> Iterator[Workers]:
    env = {
        "NATS_URL": nats_server.url, "PORT": "0", "PARTITIONS": "4", "DATA_DIR": str(tmp_path / "data"),
        "HTTP_IDLE_SECONDS": str(IDLE_SECONDS), "HTTP_BODY_SECONDS": str(BODY_SECONDS),
        "INGEST_CONCURRENCY": str(INGEST_CONCURRENCY), "DASHBOARD_STREAMS": str(DASHBOARD_STREAMS),
    }  # fmt: skip
    with Workers(tmp_path / "logs", env) as pool:
        yield pool


async def start_web(workers: Workers) -> tuple[WorkerProcess, str]:
    web = workers.spawn([sys.executable, "-m", "app", "web"], name="web")
    await web.wait_for_log(r"web listening on http://\S+", timeout=60)
    url = web.log().split("web listening on ", 1)[1].split()[0]
    return web, url


async def test_stalled_uploads_and_idle_connections_are_closed_while_others_are_served(workers: Workers) -> None:
    web, url = await start_web(workers)
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 0
    async with aiohttp.ClientSession() as http, attack(host, port, uploads=200, sent=256 * 1024, idle=50) as clients:
        # Meanwhile, a normal client is served: the door is bounded, not shut.
        async def served() -> bool:
            try:
                async with http.post(f"{url}/v1/events", json={"events": EVENTS[:20]}) as response:
                    return response.status == 202
            except aiohttp.ClientError:
                return False

        await poll_until(served, timeout=10, what="a normal upload to be accepted during the attack")
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200

        # Every stalled client is closed by the server: the uploads admitted within the body
        # deadline (408), the others at once (503), the idle ones within the header deadline.
        done, pending = await asyncio.wait(clients, timeout=BODY_SECONDS + IDLE_SECONDS + 20)
        assert not pending, f"{len(pending)} of {len(clients)} stalled connections still open"
        ends = [task.result() for task in done]
        uploads, idle = ends[:200], ends[200:]
        statuses = [end.status for end in uploads if end.status is not None]
        assert statuses.count(408) >= 1 and set(statuses) <= {408, 503}, statuses
        assert max(end.seconds for end in idle) < IDLE_SECONDS + 5
    assert await web.terminate() == 0


async def test_ingest_beyond_its_cap_gets_503_with_retry_after(workers: Workers) -> None:
    web, url = await start_web(workers)
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 0

    def holder() -> asyncio.Task[Closed]:
        return asyncio.create_task(stalled_upload(host, port, sent=1024))

    holders = [holder() for _ in range(INGEST_CONCURRENCY)]
    try:
        async with aiohttp.ClientSession() as http:
            async def refused() -> tuple[int, str | None, str] | None:
                # A holder that met the test's own upload in a slot was refused (and its rest read
                # and dropped for the lingering time): it is replaced, and the upload waits a round
                # for the new one to connect, until every slot is held by a stalled upload.
                if any(task.done() for task in holders):
                    holders[:] = [task if not task.done() else holder() for task in holders]
                    return None
                async with http.post(f"{url}/v1/events", json={"events": EVENTS[:5]}) as response:
                    answer = (response.status, response.headers.get("Retry-After"), await response.text())
                return answer if answer[0] == 503 else None

            status, retry_after, body = await poll_until(refused, timeout=10, what="an upload beyond the cap refused")
            assert retry_after == "2" and f"{INGEST_CONCURRENCY} ingest requests" in body
            # The holders time out (408) and free their slots: the next upload is stored.
            ends = await asyncio.wait_for(asyncio.gather(*holders), BODY_SECONDS + 20)
            assert [end.status for end in ends] == [408] * INGEST_CONCURRENCY
            async with http.post(f"{url}/v1/events", json={"events": EVENTS[:5]}) as response:
                assert response.status == 202
    finally:
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    assert await web.terminate() == 0


async def test_dashboard_streams_beyond_their_cap_get_503_with_retry_after(workers: Workers) -> None:
    web, url = await start_web(workers)
    async with aiohttp.ClientSession() as http:
        streams = [await http.get(f"{url}/dashboard/stream") for _ in range(DASHBOARD_STREAMS)]
        assert all(stream.status == 200 for stream in streams)
        async with http.get(f"{url}/dashboard/stream") as refused:
            assert (refused.status, refused.headers.get("Retry-After")) == (503, "2")
            assert f"{DASHBOARD_STREAMS} dashboard streams" in await refused.text()
        async with http.get(f"{url}/dashboard") as page:  # the pages themselves are not capped
            assert page.status == 200
        streams.pop().close()

        async def admitted() -> bool:
            async with http.get(f"{url}/dashboard/stream") as again:
                return again.status == 200

        # The server notices a page went away at its next write: a keep-alive (5 s) at the latest.
        await poll_until(admitted, timeout=20, interval=0.5, what="a stream admitted once one closed")
        for stream in streams:
            stream.close()
    started = time.monotonic()
    assert await web.terminate() == 0
    assert time.monotonic() - started < 30
