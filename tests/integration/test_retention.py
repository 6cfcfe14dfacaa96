"""Retention settings against real processes (issue 13): every stream and bucket the web process
and a metric worker create is bounded as the settings say, and a changed setting reaches the
existing streams in place when the processes start again - same streams, same messages, and a
log line saying what changed.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from app.settings import Settings
from app.web.services import WebOptions, WebServices
from bridges.connection import ConnectionSettings
from bridges.public.event_sink import EventSink
from bridges.public.metric_registry import REGISTRY_MAX_BYTES
from bridges.server import NatsServer
from contract.events import validate_event
from contract.registry import REGISTRY_BUCKET
from testkit.pipeline import metric_env
from testkit.streams import events_stored
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

DAY = 86400.0
MIB = 1 << 20
GIB = 1 << 30
AGENT = "engagement"
PARTITIONS = 2
CHANGELOG = f"FAUST_{AGENT}-{AGENT}-windows-changelog"
ASSIGNOR = f"FAUST_{AGENT}-__assignor-__leader_0"

#: every setting changed from its default
CHANGED = {
    "EVENTS_RETENTION": "3d", "EVENTS_MAX_BYTES": "512M",
    "INGEST_RETENTION": "2d", "INGEST_MAX_BYTES": "256M",
    "RESULTS_RETENTION": "5d", "RESULTS_MAX_BYTES": "1G",
    "DEADLETTER_RETENTION": "20d", "DEADLETTER_MAX_BYTES": "128M",
    "METRICS_TTL": "30d", "METRICS_MAX_BYTES": "2G",
    "CHANGELOG_MAX_BYTES": "2G",
}


def bounds(
    events: tuple[float, int], ingest: tuple[float, int], results: tuple[float, int],
    deadletter: tuple[float, int], metrics: tuple[float, int], changelog: int,
) -> dict[str, tuple[float, int]]:
    """(max_age, max_bytes) of every stream and bucket the web process and one worker make."""
    table = {f"FAUST_events_{p}": events for p in range(PARTITIONS)}
    table |= {f"{CHANGELOG}_{p}": (0.0, changelog) for p in range(PARTITIONS)}
    table |= {ASSIGNOR: events, "FAUST_INGEST": ingest, "FAUST_RESULTS": results, "FAUST_DEADLETTER": deadletter}
    table |= {"KV_metrics": metrics}
    table |= {f"KV_faust_{bucket}": (0.0, 64 * MIB) for bucket in ("topics", "offsets", "groups")}
    # Descriptions outlive their metric's quiet periods: bounded by bytes alone, no setting.
    table |= {f"KV_{REGISTRY_BUCKET}": (0.0, REGISTRY_MAX_BYTES)}
    return table


DEFAULT_BOUNDS = bounds(
    events=(7 * DAY, -1), ingest=(7 * DAY, -1), results=(7 * DAY, -1), deadletter=(14 * DAY, -1),
    metrics=(90 * DAY, -1), changelog=GIB,
)
CHANGED_BOUNDS = bounds(
    events=(3 * DAY, 512 * MIB), ingest=(2 * DAY, 256 * MIB), results=(5 * DAY, GIB),
    deadletter=(20 * DAY, 128 * MIB), metrics=(30 * DAY, 2 * GIB), changelog=2 * GIB,
)


async def stream_bounds(js: JetStreamContext) -> dict[str, tuple[float, int]]:
    return {info.config.name: (info.config.max_age, info.config.max_bytes) for info in await js.streams_info()}


async def run_once(env: Mapping[str, str], pool: Workers, name: str) -> str:
    """Start the web services and a worker with ``env``, wait until both are up, stop both.

    Returns what the two logged about stream limits (the web services run in this process).
    """
    settings = Settings.from_env(env)
    handler = _Capture()
    logging.getLogger("bridges.jetstream").addHandler(handler)
    try:
        services = WebServices(ConnectionSettings.from_urls(env["NATS_URL"]), WebOptions.from_settings(settings))
        async with services:
            worker = pool.spawn([sys.executable, "-m", "app", "worker", AGENT], name=name, METRICS_PORT="0", **env)
            await worker.wait_ready(timeout=60)
            assert await worker.terminate() == 0, worker.log()[-4000:]
    finally:
        logging.getLogger("bridges.jetstream").removeHandler(handler)
    return "\n".join(handler.lines) + "\n" + worker.log()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_streams_are_bounded_by_the_settings_and_follow_a_change_in_place(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = metric_env(nats_server.url, tmp_path / "data", window=60, grace=10, partitions=PARTITIONS)
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        with Workers(tmp_path / "logs", env) as pool:
            first_log = await run_once(env, pool, "first")
            assert await stream_bounds(js) == DEFAULT_BOUNDS
            assert "limits changed in place" not in first_log, "a fresh deployment is created bounded"

            # Something in every stream the settings bound, to see it survive the change.
            async with EventSink(client, partitions=PARTITIONS) as sink:
                now = time.time()
                events = [
                    {"event_id": f"e{n}", "student_id": f"s{n}", "type": "engagement", "name": "session_started",
                     "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
                    for n in range(6)
                ]
                assert (await sink.publish([validate_event(e, now=now) for e in events])).accepted == 6
            await js.publish("deadletter.invalid", b"{}")
            # A final in KV, which the server publishes into the results stream (RESULTS_FROM).
            await (await js.key_value("metrics")).put(f"{AGENT}.s1.0", b"{}")
            await poll_until(lambda: _results_stored(js), timeout=10, what="the final in the results stream")
            before = {info.config.name: info for info in await js.streams_info()}
            events_before = await events_stored(client)

            second_log = await run_once({**env, **CHANGED}, pool, "second")
            after = {info.config.name: info for info in await js.streams_info()}
            events_after = await events_stored(client)
        assert await stream_bounds(js) == CHANGED_BOUNDS
    finally:
        await client.close()

    assert after.keys() == before.keys()
    for name, info in after.items():
        assert info.created == before[name].created, f"{name} was recreated"
    for name in ("FAUST_events_0", "FAUST_events_1", "FAUST_RESULTS", "FAUST_DEADLETTER", "KV_metrics"):
        kept = (before[name].state.first_seq, before[name].state.messages)
        assert (after[name].state.first_seq, after[name].state.messages) == kept, name
    assert events_before == events_after == 6

    changed = set(re.findall(r"stream (\S+): limits changed in place: ", second_log))
    assert changed == {name for name in CHANGED_BOUNDS if CHANGED_BOUNDS[name] != DEFAULT_BOUNDS[name]}
    assert "stream FAUST_RESULTS: limits changed in place: max_age 7d -> 5d; max_bytes unlimited -> 1 GiB" in second_log
    assert "refused" not in second_log


async def test_the_event_sink_fits_its_dedupe_window_under_a_short_retention(nats_server: NatsServer) -> None:
    """EVENTS_RETENTION is refused under 10 minutes; the sink itself, used directly with less,
    remembers ids as long as the stream keeps events instead of failing to start."""
    client = await nats.connect(nats_server.url)
    try:
        async with EventSink(client, partitions=1, retention=300.0, max_bytes=64 * MIB):
            pass
        config = (await client.jetstream().stream_info("FAUST_events_0")).config
    finally:
        await client.close()
    assert (config.max_age, config.max_bytes, config.duplicate_window) == (300.0, 64 * MIB, 300.0)


async def _results_stored(js: JetStreamContext) -> bool:
    return (await js.stream_info("FAUST_RESULTS")).state.messages > 0
