"""The dashboard against a real nats-server: pages show what the ``metrics`` bucket holds, the
event stream sends each new window as it is written, and streams end when the web process stops."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.dashboard import Dashboard, add_dashboard
from app.web import WebOptions, WebServices, make_web_app
from bridges.connection import ConnectionSettings
from bridges.public.durable_puller import PullerConfig
from bridges.server import NatsServer
from testkit.metrics import put_results
from testkit.oracle import expected_results, generate_sessions
from testkit.streams import PARTITIONS, nats_client
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

START = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=5, students=4, minutes=4, start_epoch=START))
CELL = re.compile(r'data-key="([^"]+)" data-field="([^"]+)" data-value="([^"]*)"')


@asynccontextmanager
async def dashboard_app(nats_url: str) -> AsyncIterator[tuple[TestClient[Any, Any], Dashboard]]:
    options = WebOptions(partitions=PARTITIONS, puller=PullerConfig(expires=0.5), stop_timeout=3.0)
    async with WebServices(ConnectionSettings.from_urls(nats_url), options) as services:
        app = make_web_app(services)
        dashboard = add_dashboard(app, services.reader, window_seconds=60, grace_seconds=10)
        async with TestServer(app) as server, TestClient(server) as http:
            yield http, dashboard


def latest_windows(results: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str | None], str]:
    """(metric, student, game) -> the KV key of its newest window."""
    latest: dict[tuple[str, str, str | None], str] = {}
    for key, value in sorted(results.items(), key=lambda item: int(item[0].rsplit(".", 1)[1])):
        latest[(value["metric"], value["key"]["student_id"], value["key"].get("game_id"))] = key
    return latest


def unescape(text: str) -> str:
    return text.replace("&quot;", '"').replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def next_patch(response: aiohttp.ClientResponse, timeout: float = 20.0) -> dict[str, str]:
    """The next ``patch`` event of a server-sent event stream."""
    deadline = time.monotonic() + timeout
    while True:
        line = await asyncio.wait_for(response.content.readline(), max(0.1, deadline - time.monotonic()))
        if not line:
            raise AssertionError("the stream ended")
        if line.startswith(b"data: "):
            return json.loads(line[len(b"data: "):])


async def test_the_overview_shows_every_students_latest_windows_as_stored(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client, dashboard_app(nats_server.url) as (http, _):
        await put_results(client, RESULTS)
        latest = latest_windows(RESULTS)
        students = sorted({student for _, student, _ in latest})

        async def page() -> str | None:
            html = await (await http.get("/dashboard")).text()
            shown = {key for key, _, _ in CELL.findall(html)}
            return html if shown >= set(latest.values()) else None

        html = await poll_until(page, timeout=20, what="the overview to show every latest window")
        assert re.findall(r'<tr id="row-([^"]+)"', html) == students
        for key, field, raw in CELL.findall(html):
            assert key in latest.values(), f"{key} is not the newest window of its series"
            stored = RESULTS[key]["values"]
            if field == "wins/games":
                assert json.loads(unescape(raw)) == [stored["wins"], stored["games"]]
            else:
                assert json.loads(unescape(raw)) == stored[field]


async def test_a_new_window_reaches_an_open_overview_and_the_students_page(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client, dashboard_app(nats_server.url) as (http, _):
        await put_results(client, RESULTS)
        student = "s0001"
        overview = await http.get("/dashboard/stream")
        page = await http.get(f"/dashboard/stream?student={student}")
        assert overview.headers["Content-Type"] == "text/event-stream"
        # The snapshot: the student's charts, then the panels of metrics without charts (none here).
        snapshot = [await next_patch(page) for _ in range(2)]
        assert [patch["id"] for patch in snapshot] == [f"panels-{student}", f"metric-panels-{student}"]

        later = START + 3600
        other = {k: v for k, v in RESULTS.items() if k.startswith("engagement.s0002.")}
        mine = {k: v for k, v in RESULTS.items() if k.startswith(f"engagement.{student}.")}
        _, template = next(iter(other.items()))
        await put_results(client, {f"engagement.s0002.{later}": template})
        _, template = next(iter(mine.items()))
        await put_results(client, {f"engagement.{student}.{later}": template})

        async def row_with(key: str) -> dict[str, str]:
            while True:
                patch = await next_patch(overview)
                if key in patch["html"]:
                    return patch

        patch = await asyncio.wait_for(row_with(f"engagement.{student}.{later}"), 20)
        assert patch["id"] == f"row-{student}" and patch["parent"] == "students"
        # The student's stream skips other students' windows: its next patch is its own.
        patch = await next_patch(page)
        assert patch["id"] == f"panels-{student}" and f'data-window="{later}"' in patch["html"]
        overview.close()
        page.close()


async def test_closing_the_dashboard_ends_its_streams(nats_server: NatsServer) -> None:
    async with dashboard_app(nats_server.url) as (http, dashboard):
        stream = await http.get("/dashboard/stream")
        while (await next_patch(stream))["id"] != "summary":  # the snapshot, which ends with the summary
            pass
        await dashboard.close()
        rest = await asyncio.wait_for(stream.content.read(), 10)
        assert b"event: patch" not in rest
        assert stream.content.at_eof()


async def test_pages_ids_and_files(nats_server: NatsServer) -> None:
    async with dashboard_app(nats_server.url) as (http, _):
        home = await http.get("/", allow_redirects=False)
        assert (home.status, home.headers["Location"]) == (302, "/dashboard")
        unknown = await http.get("/dashboard/students/nobody-yet")
        assert unknown.status == 200 and "no windows yet" in await unknown.text()
        assert "script-src 'self'" in unknown.headers["Content-Security-Policy"]
        assert (await http.get("/dashboard/students/a.b")).status == 404
        assert (await http.get("/dashboard/stream?student=%2A")).status == 404
        script = await http.get("/dashboard/static/dashboard.js")
        assert script.status == 200 and "javascript" in script.headers["Content-Type"]
        assert "EventSource" in await script.text()
        assert (await http.get("/dashboard/static/dashboard.css")).status == 200
        assert (await http.get("/dashboard/static/../dashboard.py")).status in (403, 404)


async def test_the_web_process_serves_the_dashboard_and_stops_at_once_with_a_page_open(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    env = {"NATS_URL": nats_server.url, "PORT": "0", "PARTITIONS": str(PARTITIONS), "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as pool:
        web = pool.spawn([sys.executable, "-m", "app", "web"], name="web")
        await web.wait_for_log(r"web listening on http://\S+", timeout=60)
        url = re.search(r"web listening on (http://\S+)", web.log()).group(1)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/dashboard") as response:
                assert response.status == 200 and "Classroom" in await response.text()
            async with session.get(f"{url}/dashboard/stream") as stream:
                await next_patch(stream)
                web.signal(signal.SIGTERM)
                started = time.monotonic()
                assert await web.wait_exit(20) == 0
        # Without ending the streams first, the request drain would wait for its deadline (30 s).
        assert time.monotonic() - started < 10, web.log()
