"""``python -m app simulate`` as a process, against a real web application and nats-server:
what it reports sending is what ingest stored, deduplicated and dead-lettered."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bridges.server import NatsServer, free_port
from testkit.streams import events_stored, nats_client, stored_events, stream_count
from testkit.web import running_web
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

QUICK = ["--students", "5", "--rate", "60", "--duration", "2", "--seed", "3", "--json", "--report-every", "1"]


def final_report(log: str) -> dict[str, Any]:
    reports = [json.loads(line)["simulator"] for line in log.splitlines() if line.startswith('{"simulator"')]
    assert reports, log
    return reports[-1]


async def simulate(pool: Workers, *args: str, name: str = "simulator", **env: str) -> tuple[int, str]:
    process = pool.spawn([sys.executable, "-m", "app", "simulate", *args], name=name, **env)
    code = await process.wait_exit(60)
    return code, process.log()


async def invalid_dead_letters(client: Any) -> int:
    info = await client.jetstream().stream_info("FAUST_DEADLETTER", subjects_filter="deadletter.invalid")
    return sum((info.state.subjects or {}).values())


@pytest.fixture
def pool(tmp_path: Path, nats_server: NatsServer):
    with Workers(tmp_path / "logs", {"NATS_URL": nats_server.url, "DATA_DIR": str(tmp_path / "data")}) as workers:
        yield workers


async def distinct_events_stored(client: Any) -> int:
    """Events in the events topic, each ``(student_id, event_id)`` once, as the windows count them."""
    return len({(item.event["student_id"], item.event["event_id"]) for item in await stored_events(client)})


async def test_over_http_ingest_stores_every_event_and_refuses_the_invalid_ones(
    nats_server: NatsServer, pool: Workers
) -> None:
    async with running_web(nats_server.url) as web, nats_client(nats_server.url) as client:
        url = str(web.http.make_url("")).rstrip("/")
        code, log = await simulate(
            pool, "--url", url, *QUICK, "--duplicates", "0.2", "--late", "0.1", "--invalid", "0.1"
        )
        assert code == 0, log
        report = final_report(log)
        assert report["sent"] > 60 and report["repeats"] > 0 and report["invalid"] > 0 and report["late"] > 0
        # A repeat in a later request is stored again (the windows count an event_id once);
        # what was stored is exactly what the 202s said, and every event is there.
        assert report["accepted"] + report["duplicates"] == report["sent"] + report["repeats"]
        assert report["refused"] == report["invalid"]  # HTTP answers 422 and stores nothing of them
        assert await events_stored(client) == report["accepted"]
        assert await distinct_events_stored(client) == report["sent"]
        assert f"HTTP {url}/v1/events" in log


async def test_both_paths_valid_over_http_repeats_and_invalid_over_nats(
    nats_server: NatsServer, pool: Workers
) -> None:
    async with running_web(nats_server.url) as web, nats_client(nats_server.url) as client:
        url = str(web.http.make_url("")).rstrip("/")
        code, log = await simulate(
            pool, "--url", url, "--ingest", "both", *QUICK, "--duplicates", "0.2", "--invalid", "0.1"
        )
        assert code == 0, log
        report = final_report(log)
        assert report["repeats"] > 0 and report["invalid"] > 0
        assert report["refused"] == 0 and report["duplicates"] == 0  # NATS ingest answers neither
        await poll_until(
            lambda: _equals(invalid_dead_letters(client), report["invalid"]),
            timeout=30, what="every invalid event dead-lettered",
        )
        # The repeats crossed paths, and each event is there once as the windows count them.
        await poll_until(lambda: _equals(stream_count(client, "FAUST_INGEST"), 0), timeout=30, what="NATS ingest idle")
        assert await distinct_events_stored(client) == report["sent"]
        assert await events_stored(client) <= report["sent"] + report["repeats"]


async def test_over_nats_ingest_alone(nats_server: NatsServer, pool: Workers) -> None:
    async with running_web(nats_server.url), nats_client(nats_server.url) as client:
        code, log = await simulate(pool, "--ingest", "nats", *QUICK, "--invalid", "0.1")
        assert code == 0, log
        report = final_report(log)
        assert report["accepted"] == report["sent"] + report["invalid"]
        await poll_until(
            lambda: _equals(events_stored(client), report["sent"]), timeout=30, what="every valid event stored"
        )
        await poll_until(
            lambda: _equals(invalid_dead_letters(client), report["invalid"]), timeout=30, what="the dead letters"
        )
        assert f"NATS {nats_server.url}" in log


async def test_a_wrong_token_stops_the_run_with_an_error(nats_server: NatsServer, pool: Workers) -> None:
    async with running_web(nats_server.url, token="right-token") as web:
        url = str(web.http.make_url("")).rstrip("/")
        code, log = await simulate(pool, "--url", url, *QUICK, INGEST_TOKEN="wrong-token")
    assert code == 1
    assert "answered 401: set INGEST_TOKEN" in log
    assert "wrong-token" not in log and "right-token" not in log


async def test_without_ingest_it_retries_until_its_duration_is_up(pool: Workers) -> None:
    code, log = await simulate(pool, "--url", f"http://127.0.0.1:{free_port()}", *QUICK)
    assert code == 0, log
    report = final_report(log)
    assert report["retries"] >= 2 and report["sent"] == 0
    assert "HTTP ingest unavailable" in log


async def _equals(count: Any, expected: int) -> bool:
    return await count == expected
