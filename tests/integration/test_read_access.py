"""Reads behind a token (READ_TOKEN) and behind a deployment's own per-tenant hook (READ_ACCESS),
against a real nats-server: the query API, the dashboard's pages and its event stream.

Without a token reads answer 401, with it 200; health, readiness and the OpenAPI document stay
open; the dashboard takes the token once, from its sign-in form, and keeps it in a cookie; a
tenant's token reads its own students only, on the dashboard too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.access import ReadAccess, ReadGuard, TokenAccess
from app.dashboard import add_dashboard
from app.dashboard.handlers import COOKIE
from app.web import WebOptions, WebServices, make_web_app
from app.web.openapi import openapi_document
from app.web.routes import READ_SECURITY
from bridges.connection import ConnectionSettings, Secret
from bridges.public.durable_puller import PullerConfig
from bridges.server import NatsServer
from testkit.metrics import put_results
from testkit.oracle import expected_results, generate_sessions
from testkit.streams import PARTITIONS, nats_client
from testkit.web import token_comparisons
from testkit.workers import poll_until
from tests.apps.tenants import Tenants

pytestmark = pytest.mark.integration

START = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=5, students=4, minutes=4, start_epoch=START))
TOKEN = "read-tok-9f2c"


@asynccontextmanager
async def web_app(nats_url: str, access: ReadAccess | None) -> AsyncIterator[TestClient[Any, Any]]:
    """The web process's application (API and dashboard) with reads behind ``access``."""
    options = WebOptions(partitions=PARTITIONS, puller=PullerConfig(expires=0.5), stop_timeout=3.0)
    guard = ReadGuard(access)
    async with WebServices(ConnectionSettings.from_urls(nats_url), options) as services:
        app = make_web_app(services, read_guard=guard)
        add_dashboard(app, services.reader, guard=guard, window_seconds=60, grace_seconds=10)
        async with TestServer(app) as server, TestClient(server) as http:
            yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_paths() -> list[str]:
    """Every route the OpenAPI document says needs the read token, with a student filled in."""
    paths = openapi_document()["paths"]
    guarded = [path for path, item in paths.items() if any(READ_SECURITY in op.get("security", []) for op in item.values())]
    assert len(guarded) == 3, guarded  # the query API: the metrics list, a range, the latest
    return [path.replace("{metric}", "engagement").replace("{student_id}", "s0001") for path in guarded]


async def test_without_the_read_token_reads_answer_401_and_with_it_200(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client, web_app(nats_server.url, TokenAccess(Secret(TOKEN))) as http:
        await put_results(client, RESULTS)
        for path in [*read_paths(), "/dashboard", "/dashboard/students/s0001", "/dashboard/stream"]:
            for headers in ({}, bearer("wrong"), {"Authorization": TOKEN}):
                response = await http.get(path, headers=headers)
                assert response.status == 401, (path, headers)
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="read"'
        for path in read_paths():
            response = await http.get(path, headers={"Authorization": f"bearer {TOKEN}"})  # any case
            assert response.status == 200, (path, await response.text())
        for path in ("/dashboard", "/dashboard/students/s0001"):
            assert (await http.get(path, headers=bearer(TOKEN))).status == 200
        # What holds no student's data stays open.
        for path in ("/healthz", "/readyz", "/openapi.json", "/dashboard/static/dashboard.css"):
            assert (await http.get(path)).status == 200, path


async def test_the_read_token_is_compared_by_ingest_s_constant_time_check(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared = token_comparisons(monkeypatch)
    async with web_app(nats_server.url, TokenAccess(Secret(TOKEN))) as http:
        await http.get("/v1/metrics/engagement/s0001", headers=bearer("nope"))
        await http.get("/dashboard", headers=bearer("nope2"))
    assert compared == [(b"nope", TOKEN.encode()), (b"nope2", TOKEN.encode())]


async def test_the_dashboard_takes_the_token_once_and_keeps_it_in_a_cookie(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client, web_app(nats_server.url, TokenAccess(Secret(TOKEN))) as http:
        await put_results(client, RESULTS)
        page = await http.get("/dashboard/students/s0002")
        assert page.status == 401
        form = await page.text()
        assert 'action="/dashboard/login"' in form and 'name="next" value="/dashboard/students/s0002"' in form

        wrong = await http.post("/dashboard/login", data={"token": "guess", "next": "/dashboard"}, allow_redirects=False)
        assert wrong.status == 401 and COOKIE not in wrong.cookies
        # Back to a page of the dashboard only, never to another site.
        elsewhere = await http.post(
            "/dashboard/login", data={"token": TOKEN, "next": "https://example.org/"}, allow_redirects=False
        )
        assert elsewhere.status == 303 and elsewhere.headers["Location"] == "/dashboard"
        signed_in = await http.post(
            "/dashboard/login", data={"token": TOKEN, "next": "/dashboard/students/s0002"}, allow_redirects=False
        )
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/dashboard/students/s0002"
        cookie = signed_in.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
        assert TOKEN not in cookie  # encoded, and not in any URL or log

        # The client's cookie jar now sends it, as a browser does: pages and the stream open.
        assert (await http.get("/dashboard")).status == 200
        assert (await http.get("/dashboard/students/s0002")).status == 200
        stream = await http.get("/dashboard/stream")
        assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
        stream.close()
        # The API takes the header only: a page's cookie is not a key to the API.
        assert (await http.get("/v1/metrics/engagement/s0001")).status == 401


async def next_patch(response: aiohttp.ClientResponse) -> dict[str, str]:
    while True:
        line = await asyncio.wait_for(response.content.readline(), 20)
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            return dict(json.loads(line[len(b"data: "):]))


async def test_a_tenant_hook_decides_which_students_a_token_reads(nats_server: NatsServer) -> None:
    """READ_ACCESS's hook: school A's token reads s0001 only, school B's s0002 and s0003."""
    tenants = Tenants({"token-a": ["s0001"], "token-b": ["s0002", "s0003"]})
    async with nats_client(nats_server.url) as client, web_app(nats_server.url, tenants) as http:
        await put_results(client, RESULTS)
        a, b = bearer("token-a"), bearer("token-b")
        assert (await http.get("/v1/metrics/engagement/s0001/latest", headers=a)).status == 200
        refused = await http.get("/v1/metrics/engagement/s0002/latest", headers=a)
        assert refused.status == 403
        assert (await refused.json())["errors"][0]["field"] == "student_id"
        assert (await http.get("/v1/metrics/engagement/s0002", headers=b)).status == 200
        assert (await http.get("/v1/metrics/engagement/s0002", headers=bearer("token-c"))).status == 401
        # An id that is no id is the handler's to answer (422), not the hook's.
        assert (await http.get("/v1/metrics/engagement/s*", headers=a)).status == 422

        # The dashboard shows a reader its own students only, the summary included.
        async def rows(headers: dict[str, str]) -> list[str] | None:
            html = await (await http.get("/dashboard", headers=headers)).text()
            found = re.findall(r'<tr id="row-([^"]+)"', html)
            return found if len(found) >= 1 else None

        assert await poll_until(lambda: rows(a), timeout=20, what="a row for school A") == ["s0001"]
        assert await poll_until(lambda: rows(b), timeout=20, what="rows for school B") == ["s0002", "s0003"]
        html = await (await http.get("/dashboard", headers=a)).text()
        assert 'data-students="1"' in html
        assert (await http.get("/dashboard/students/s0002", headers=a)).status == 403
        assert (await http.get("/dashboard/stream?student=s0002", headers=a)).status == 403

        # The overview's stream: a snapshot of school A's rows, then A's changes and not B's.
        stream = await http.get("/dashboard/stream", headers=a)
        snapshot = [await next_patch(stream)]
        while snapshot[-1]["id"] != "summary":
            snapshot.append(await next_patch(stream))
        assert [patch["id"] for patch in snapshot] == ["row-s0001", "pager", "summary"]
        template = next(v for k, v in RESULTS.items() if k.startswith("engagement.s0002."))
        await put_results(client, {f"engagement.s0002.{START + 3600}": template})
        await put_results(client, {f"engagement.s0001.{START + 3600}": {**template, "key": {"student_id": "s0001"}}})
        patch = await next_patch(stream)
        assert patch["id"] == "row-s0001" and f"engagement.s0001.{START + 3600}" in patch["html"]
        stream.close()
