"""The sample configuration ``deploy/nats-accounts.conf``: each role does its job end to end and
is refused outside it; HTTP ingest refuses a wrong token; no secret reaches a log.

The server runs the committed file itself (passwords from its environment). The web process
runs as ``ingest``, the three metric workers as ``worker``, a NATS producer as ``producer`` and a
dashboard as ``reader``, each with its own reply-inbox prefix. While they work, the server logs no
permission violation; then each role tries what it must not, and the server refuses it.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig

from bridges.connection import ConnectionSettings, Secret
from bridges.public.results_client import ResultsClient
from bridges.server import NatsServer
from contract.results import parse_result
from deploy.nats_permissions import ROLES, render
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents
from testkit.oracle import expected_results
from testkit.pipeline import bucket_values, values_match
from testkit.workers import REPO, Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CONFIG = REPO / "deploy" / "nats-accounts.conf"
WINDOW, GRACE, PARTITIONS = 5, 3, 8


def test_the_sample_configuration_is_what_the_generator_renders_for_the_defaults() -> None:
    assert CONFIG.read_text() == render()


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """One fresh password per role, in the environment nats-server reads them from."""
    chosen = {role: f"pw-{role}-{secrets.token_urlsafe(12)}" for role in ROLES}
    for role, password in chosen.items():
        monkeypatch.setenv(f"NATS_{role.upper()}_PASSWORD", password)
    return chosen


@pytest.fixture
async def server(tmp_path: Path, passwords: dict[str, str]) -> AsyncIterator[NatsServer]:
    async with NatsServer(tmp_path / "nats", config_file=CONFIG) as started:
        yield started


class Session:
    """A client of one role; :meth:`refused` waits for the server to have refused it something."""

    def __init__(self, client: Client, server: NatsServer, role: str) -> None:
        self.client = client
        self.server = server
        self.role = role

    async def refused(self, subject: str) -> None:
        """Until the server logged a publish or subscription violation of this role on ``subject``."""
        line = re.compile(
            rf'"LEARNING/user:{self.role}" - (?:Publish|Subscription) Violation - Subject "{re.escape(subject)}"'
        )
        await poll_until(
            lambda: line.search(self.server.log_file.read_text()) is not None,
            timeout=10, what=f"the server to refuse {self.role} {subject}",
        )


@asynccontextmanager
async def session(server: NatsServer, role: str, password: str) -> AsyncIterator[Session]:
    async def ignore(exc: Exception) -> None:
        """The refusals this test provokes arrive here too; the server log is what is checked."""

    client = await nats.connect(
        server.url, user=role, password=password, inbox_prefix=f"_INBOX_{role}", error_cb=ignore
    )
    try:
        yield Session(client, server, role)
    finally:
        await client.close()


async def attempt(coro: Any) -> None:
    """Run a request the server will not answer (refused): it fails, and that is the point."""
    try:
        await asyncio.wait_for(coro, 2)
    except Exception:  # noqa: BLE001 - a timeout, no responders or a permissions error
        return
    raise AssertionError("the request was answered")


async def test_each_role_does_its_job_and_is_refused_outside_it(
    server: NatsServer, passwords: dict[str, str], tmp_path: Path
) -> None:
    token = f"tok-{secrets.token_urlsafe(12)}"
    env = fault_env(
        server.url, tmp_path / "data", window=WINDOW, grace=GRACE, PARTITIONS=str(PARTITIONS),
        NATS_USER="worker", NATS_PASSWORD=passwords["worker"], NATS_INBOX_PREFIX="_INBOX_worker",
        INGEST_TOKEN=token, LOG_LEVEL="debug",
    )
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(
            pool, NATS_USER="ingest", NATS_PASSWORD=passwords["ingest"], NATS_INBOX_PREFIX="_INBOX_ingest"
        )
        await Deployment(pool, server.url, per_agent=1).start()
        async with session(server, "producer", passwords["producer"]) as producer, \
                session(server, "reader", passwords["reader"]) as reader:
            # Jobs: HTTP ingest (with the token) and NATS ingest, metrics computed, results read.
            live = LiveEvents(seed=77, run="acl")
            nats_events = live.batch(40, time.time())
            js = producer.client.jetstream()
            for item in nats_events:
                ack = await js.publish(f"events.{item['type']}.{item['student_id']}", json.dumps(item).encode())
                assert ack.stream == "FAUST_INGEST"
            await js.publish("events.engagement.s000", b"not an event")  # dead-lettered by ingest
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/v1/events", json={"events": live.batch(5, time.time())}) as response:
                    assert response.status == 401  # no token
                bad = {"Authorization": f"Bearer {token[:-1]}"}
                async with http.post(f"{url}/v1/events", json=live.batch(1, time.time())[0], headers=bad) as response:
                    assert response.status == 401  # wrong token
            async with HttpTraffic(url, live, token=token) as traffic:
                await traffic.wait_accepted(400)
            accepted = [*nats_events, *traffic.accepted]
            expected = expected_results(accepted, window_seconds=WINDOW)

            async def all_final() -> dict[str, Any] | None:
                values = await bucket_values(reader.client)
                return values if values.keys() >= expected.keys() else None

            values = await poll_until(all_final, timeout=90, interval=0.5, what="every window, read as reader")
            assert values.keys() == expected.keys()
            assert all(values_match(values[k], expected[k]) for k in expected)
            # The project's client for services, as reader: results replayed from the stream.
            settings = ConnectionSettings.from_urls(
                server.url, user="reader", password=Secret(passwords["reader"]), inbox_prefix="_INBOX_reader"
            )
            async with ResultsClient.connect(settings, parse_result) as results_client, \
                    results_client.subscribe(since=datetime.now(UTC) - timedelta(hours=1)) as results:
                first = await asyncio.wait_for(anext(aiter(results)), 10)
                assert first.final is True
            async with http_get(f"{url}/v1/metrics/engagement/{accepted[0]['student_id']}") as (status, body):
                assert status == 200 and body["windows"]
            assert "Violation" not in server.log_file.read_text(), "a role lacked a permission it needs"

            # Refusals.
            await reader.client.publish("events.engagement.s000", b"{}")
            await reader.refused("events.engagement.s000")
            await reader.client.publish("$KV.metrics.engagement.s000.1", b"{}")
            await reader.refused("$KV.metrics.engagement.s000.1")
            await reader.client.subscribe("faust.events.>")
            await reader.refused("faust.events.>")
            await reader.client.subscribe("_INBOX_worker.>")
            await reader.refused("_INBOX_worker.>")
            await attempt(reader.client.jetstream().add_stream(name="STEAL", subjects=["events.>"]))
            await reader.refused("$JS.API.STREAM.CREATE.STEAL")
            async with session(server, "ingest", passwords["ingest"]) as ingest:
                await ingest.client.publish("results.engagement.s000", b"{}")
                await ingest.refused("results.engagement.s000")
                await ingest.client.publish("$KV.metrics.engagement.s000.1", b"{}")
                await ingest.refused("$KV.metrics.engagement.s000.1")
            async with session(server, "worker", passwords["worker"]) as worker:
                await worker.client.publish("faust.events.0", b"{}")
                await worker.refused("faust.events.0")
                await worker.client.publish("events.engagement.s000", b"{}")
                await worker.refused("events.engagement.s000")
                await attempt(worker.client.jetstream().get_msg("FAUST_INGEST", 1))
                await worker.refused("$JS.API.STREAM.MSG.GET.FAUST_INGEST")
                await attempt(worker.client.jetstream().add_consumer("FAUST_DEADLETTER", ConsumerConfig(name="peek")))
                await worker.refused("$JS.API.CONSUMER.CREATE.FAUST_DEADLETTER.peek")
            await producer.client.subscribe("events.>")
            await producer.refused("events.>")
            await producer.client.subscribe("results.>")
            await producer.refused("results.>")
        # Nothing the refused publishes carried got anywhere.
        values_after = await _values_as(server, "reader", passwords["reader"])
        assert values_after == values
        logs = {w.name: w.log() for w in pool}
    # Secrets: in no process log, nor in the server's.
    everything = "\n".join([*logs.values(), server.log_file.read_text()])
    for secret in [*passwords.values(), token]:
        assert secret not in everything
    print(f"FAULTS access-control roles={len(ROLES)} refusals=13 windows={len(values)}")


async def _values_as(server: NatsServer, role: str, password: str) -> dict[str, Any]:
    async with session(server, role, password) as reader:
        return await bucket_values(reader.client)


@asynccontextmanager
async def http_get(url: str) -> AsyncIterator[tuple[int, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        yield response.status, await response.json()


async def test_wrong_credentials_fail_start_up_without_printing_them(
    server: NatsServer, passwords: dict[str, str], tmp_path: Path
) -> None:
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    env = {"NATS_URL": server.url, "NATS_CONNECT_DEADLINE": "2", "NATS_USER": "worker", "NATS_PASSWORD": wrong,
           "DATA_DIR": str(tmp_path / "data"), "PORT": "0", "LOG_LEVEL": "debug"}
    with Workers(tmp_path / "logs", env) as pool:
        web = pool.spawn([sys.executable, "-m", "app", "web"], name="web-wrong-password")
        assert await web.wait_exit(60) == 1
        assert "cannot connect to NATS" in web.log()
        assert wrong not in web.log() and wrong not in server.log_file.read_text()
