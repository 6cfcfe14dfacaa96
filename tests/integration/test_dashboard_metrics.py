"""The dashboard's generic view against a real nats-server: a metric only the registry knows is
listed, its page shows each key's latest final window as stored, its stream sends a new window as
it is written, and a reader of some students gets none of another's keys, on the page or the
stream. Results are put into the bucket as the workers write them (a metric's workers are run
for real by the browser test, tests/browser/test_generic_dashboard.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.access import EVERY_STUDENT, Reader, ReadGuard
from app.dashboard import add_dashboard
from app.web import WebOptions, WebServices, make_web_app
from bridges.connection import ConnectionSettings
from bridges.public.durable_puller import PullerConfig
from bridges.public.metric_registry import publish_description
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from contract.registry import MetricDescription, WindowDescription
from testkit.streams import PARTITIONS, nats_client
from testkit.workers import poll_until
from tests.integration.test_dashboard import next_patch, unescape

pytestmark = pytest.mark.integration

START = 1_714_557_600
HINTS = MetricDescription(
    name="hints", key_fields=("student_id",), window=WindowDescription(kind="tumbling", size_seconds=60, step_seconds=60),
    grace_seconds=10, values={"hints": "integer", "share": "number?"},
)  # fmt: skip
BY_CLASS = MetricDescription(
    name="class_load", key_fields=("class_id",), window=HINTS.window, values={"events": "integer"}
)
CELL = re.compile(r'data-key="([^"]+)" data-field="([^"]+)" data-value="([^"]*)"')


class Tokens:
    """``all`` reads every student; ``s1`` reads student s1 only."""

    def reader(self, token: str) -> Reader | None:
        return {"all": EVERY_STUDENT, "s1": _Only("s1")}.get(token)


class _Only:
    def __init__(self, student: str) -> None:
        self.student = student

    def may_read(self, student_id: str) -> bool:
        return student_id == self.student


def result(metric: str, key: dict[str, str], start: int, values: dict[str, Any]) -> tuple[str, bytes]:
    window = {"start": f"{start}", "end": f"{start + 60}"}  # shown as stored
    value = {"metric": metric, "key": key, "window": window, "final": True, "events": 1, "values": values}
    return ".".join([metric, *key.values(), str(start)]), json.dumps(value).encode()


@asynccontextmanager
async def dashboard_app(nats_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    options = WebOptions(partitions=PARTITIONS, puller=PullerConfig(expires=0.5), stop_timeout=3.0)
    async with WebServices(ConnectionSettings.from_urls(nats_url), options) as services:
        app = make_web_app(services)
        add_dashboard(app, services.reader, guard=ReadGuard(Tokens()), window_seconds=60, grace_seconds=10)
        async with TestServer(app) as server, TestClient(server) as http:
            yield http


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def put(client: Any, *values: tuple[str, bytes]) -> None:
    kv = await PublicStreams().ensure_metrics_bucket(client.jetstream())
    for key, raw in values:
        await kv.put(key, raw)


async def test_a_metric_only_the_registry_knows_has_its_pages_and_its_stream(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client, dashboard_app(nats_server.url) as http:
        for description in (HINTS, BY_CLASS):
            await publish_description(client.jetstream(), PublicStreams(), description)
        stored = [
            result("hints", {"student_id": "s1"}, START, {"hints": 1, "share": None}),
            result("hints", {"student_id": "s1"}, START + 60, {"hints": 4, "share": 0.5, "extra": "<script>x</script>"}),
            result("hints", {"student_id": "s2"}, START, {"hints": 2, "share": 1.0}),
            result("class_load", {"class_id": "c1"}, START, {"events": 9}),
        ]
        await put(client, *stored)

        listing = await http.get("/dashboard/metrics", headers=auth("s1"))
        html = await listing.text()
        assert listing.status == 200 and 'href="/dashboard/metrics/hints"' in html and "class_load" in html

        async def page(token: str) -> str | None:
            response = await http.get("/dashboard/metrics/hints", headers=auth(token))
            assert response.status == 200
            text = await response.text()
            return text if "hints.s1.1714557660" in text else None

        html = await poll_until(lambda: page("all"), timeout=20, what="the latest window of s1")
        shown = {(key, field): json.loads(unescape(raw)) for key, field, raw in CELL.findall(html)}
        assert shown == {
            ("hints.s1.1714557660", "hints"): 4, ("hints.s1.1714557660", "share"): 0.5,
            ("hints.s1.1714557660", "extra"): "<script>x</script>",
            ("hints.s2.1714557600", "hints"): 2, ("hints.s2.1714557600", "share"): 1.0,
        }  # fmt: skip
        assert "<script>x" not in html
        # A reader of s1 only: s1's row, nothing of s2's, and no metric not keyed by student.
        mine = await poll_until(lambda: page("s1"), timeout=20, what="s1's row")
        assert "s2" not in mine.replace("s1", "")
        assert (await http.get("/dashboard/metrics/class_load", headers=auth("s1"))).status == 403
        assert (await http.get("/dashboard/stream?metric=class_load", headers=auth("s1"))).status == 403
        assert (await http.get("/dashboard/metrics/class_load", headers=auth("all"))).status == 200

        # Streams: a reader of s1 is sent s1's new window, never s2's.
        everything = await http.get("/dashboard/stream?metric=hints&version=1", headers=auth("all"))
        scoped = await http.get("/dashboard/stream?metric=hints", headers=auth("s1"))
        for stream, keys in ((everything, 2), (scoped, 1)):
            snapshot = [await next_patch(stream) for _ in range(keys + 1)]
            assert [p["id"] for p in snapshot][-1] == "pager"
        assert not any("s2" in p["id"] for p in snapshot)
        await put(client, result("hints", {"student_id": "s2"}, START + 120, {"hints": 8, "share": 0.0}))
        await put(client, result("hints", {"student_id": "s1"}, START + 180, {"hints": 5, "share": 0.25}))
        assert (await next_patch(everything))["id"] == "key-s2"
        patch = await next_patch(scoped)
        assert patch["id"] == "key-s1" and "hints.s1.1714557780" in patch["html"], patch
        assert patch["parent"] == "keys" and patch["order"] == "s1"
        everything.close()
        scoped.close()


async def test_unknown_metrics_bad_versions_and_keys_are_refused_by_name(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client, dashboard_app(nats_server.url) as http:
        await publish_description(client.jetstream(), PublicStreams(), HINTS)
        await publish_description(client.jetstream(), PublicStreams(), HINTS.model_copy(update={"version": 2}))
        unknown = await http.get("/dashboard/metrics/nope", headers=auth("all"))
        text = await unknown.text()
        assert unknown.status == 404 and "No metric &#x27;nope&#x27;" in text and "known: hints" in text
        hostile = await http.get("/dashboard/metrics/%3Cscript%3E", headers=auth("all"))
        assert hostile.status == 404 and "<script>" not in await hostile.text()
        for version in ("x", "0", "3", "-1", "1.0"):
            bad = await http.get(f"/dashboard/metrics/hints?version={version}", headers=auth("all"))
            assert bad.status == 400 and "version:" in await bad.text() and "its versions: 1, 2" in await bad.text()
        stream = await http.get("/dashboard/stream?metric=hints&version=9", headers=auth("all"))
        assert stream.status == 400 and (await stream.text()).startswith("version: '9' is not a version of hints")
        stream = await http.get("/dashboard/stream?metric=nope", headers=auth("all"))
        assert stream.status == 404 and "known: hints" in await stream.text()
        after = await http.get("/dashboard/metrics/hints?after=a*b", headers=auth("all"))
        assert after.status == 400 and "after:" in await after.text()
        two = await http.get("/dashboard/metrics/hints?version=2", headers=auth("all"))
        assert two.status == 200 and "version 2" in await two.text() and "Other versions: 1" in await two.text()
        assert (await http.get("/dashboard/metrics/hints")).status == 401  # behind the read token
        assert (await http.get("/dashboard/metrics")).status == 401


async def test_a_students_page_shows_a_panel_of_each_metric_without_a_page_of_its_own(
    nats_server: NatsServer,
) -> None:
    async with nats_client(nats_server.url) as client, dashboard_app(nats_server.url) as http:
        await publish_description(client.jetstream(), PublicStreams(), HINTS)
        await put(client, result("hints", {"student_id": "s1"}, START, {"hints": 3, "share": 0.5}))

        async def panel() -> str | None:
            text = await (await http.get("/dashboard/students/s1", headers=auth("s1"))).text()
            return text if 'data-key="hints.s1.1714557600" data-field="hints" data-value="3"' in text else None

        await poll_until(panel, timeout=20, what="the hints panel of s1")
        stream = await http.get("/dashboard/stream?student=s1", headers=auth("s1"))
        ids = [(await next_patch(stream))["id"] for _ in range(2)]
        assert ids == ["panels-s1", "metric-panels-s1"]
        await put(client, result("hints", {"student_id": "s1"}, START + 60, {"hints": 7, "share": None}))
        patch = await asyncio.wait_for(next_patch(stream), 20)
        assert patch["id"] == "metric-panels-s1" and "hints.s1.1714557660" in patch["html"]
        stream.close()
        assert (await http.get("/dashboard/students/s2", headers=auth("s1"))).status == 403
