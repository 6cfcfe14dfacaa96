"""The server publishes each final the workers write once to KV: on its result subject, stored in
the results stream and delivered to core subscribers, once, for every key length.

Against a real nats-server: the results stream created with ``republish`` sources the ``metrics``
bucket's stream; a value put under a key of 1 to MAX_KEY_FIELDS key parts comes out on
``results.<series>.<first key part>``, to a core subscription and to a JetStream consumer, with
the bytes KV holds, while a worker that would write provisional values (which share their
final's key) into such a stream refuses to start, naming the setting.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.msg import Msg

from bridges.connection import ConnectionSettings
from bridges.public.streams import MAX_KEY_FIELDS, PublicStreams, republishing_results
from bridges.public.window_results import WindowResults
from bridges.server import NatsServer
from bridges.transport.options import TransportOptions
from bridges.transport.session import TransportSession
from contract.registry import MetricDescription, WindowDescription
from tables.errors import ConfigError
from testkit.streams import nats_client
from testkit.workers import poll_until

pytestmark = pytest.mark.integration


async def test_every_final_put_in_kv_is_published_once_on_its_subject(nats_server: NatsServer) -> None:
    streams = PublicStreams(republish=True, update_limits=True)
    async with nats_client(nats_server.url) as client:
        js = client.jetstream()
        assert await streams.ensure_results(js) is True
        core: list[Msg] = []

        async def collect(msg: Msg) -> None:
            core.append(msg)

        await client.subscribe("results.>", cb=collect)
        kv = await streams.ensure_metrics_bucket(js)
        expected: list[tuple[str, bytes]] = []
        for fields in range(1, MAX_KEY_FIELDS + 1):
            parts = [f"s{fields}", *(f"k{n}" for n in range(1, fields))]
            key = ".".join([f"m{fields}", *parts, "120"])
            value = json.dumps({"metric": f"m{fields}", "final": True, "n": fields}).encode()
            await kv.put(key, value)
            expected.append((f"results.m{fields}.s{fields}", value))

        await poll_until(lambda: len(core) >= len(expected), timeout=10, what="the republished results")
        await asyncio.sleep(0.3)  # anything more would arrive now: a final goes out once
        assert sorted((m.subject, m.data) for m in core) == sorted(expected)
        stored = await js.stream_info(streams.results, subjects_filter="results.>")
        assert stored.state.messages == len(expected)
        assert dict(stored.state.subjects or {}) == {subject: 1 for subject, _ in expected}
        # A JetStream reader replays them from the stream, as from a stream the workers fed.
        sub = await js.subscribe("results.m2.>", stream=streams.results, ordered_consumer=True)
        replayed = await sub.next_msg(timeout=5)
        assert (replayed.subject, replayed.data) == expected[1]
        await sub.unsubscribe()
        assert republishing_results((await js.stream_info(streams.results)).config)


async def test_a_stream_the_workers_feed_stays_so(nats_server: NatsServer) -> None:
    async with nats_client(nats_server.url) as client:
        js = client.jetstream()
        assert await PublicStreams(update_limits=True).ensure_results(js) is False
        # A process configured otherwise finds it as it is: the stream, not the setting, decides.
        assert await PublicStreams(republish=True, update_limits=True).ensure_results(js) is False
        await js.publish("results.m.s1", b"{}")
        assert (await js.stream_info(PublicStreams().results)).state.messages == 1


@pytest.mark.parametrize(
    ("provisional", "key_fields", "field"),
    [(True, ("student_id",), "METRICS_UPDATE_SECONDS"), (False, tuple(f"f{n}" for n in range(MAX_KEY_FIELDS + 1)), "key_fields")],
)
async def test_a_worker_refuses_what_a_republishing_stream_would_get_wrong(
    nats_server: NatsServer, provisional: bool, key_fields: tuple[str, ...], field: str
) -> None:
    session = TransportSession(ConnectionSettings.from_urls(nats_server.url), TransportOptions(), "m")
    results = WindowResults(session, PublicStreams(republish=True, update_limits=True), provisional=provisional)
    results.announce(MetricDescription(name="m", key_fields=key_fields, window=WindowDescription(kind="tumbling", size_seconds=60, step_seconds=60)))
    with pytest.raises(ConfigError) as refused:
        await results.start()
    assert refused.value.field == field
    await session.release()
