"""NATS ingest: events published to events.<type>.<student_id> reach the events topic or a dead letter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client

from bridges.public.nats_ingest import HDR_ORIGINAL_SIZE, HDR_ORIGINAL_SUBJECT, HDR_REASON, MAX_EVENT_BYTES
from bridges.public.streams import INGEST_CONSUMER, PublicStreams
from bridges.server import NatsServer
from testkit.oracle import generate_sessions
from testkit.streams import events_stored, nats_client, read_stream, stored_events, stream_count
from testkit.web import WebHarness, running_web
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

T0 = 1_714_557_600
EVENTS = generate_sessions(seed=9, students=20, minutes=10, start_epoch=T0)
INGEST = "FAUST_INGEST"
DEADLETTER = "FAUST_DEADLETTER"


def subject_of(event: dict[str, Any]) -> str:
    return f"events.{event['type']}.{event['student_id']}"


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def event(n: int = 0, **changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"nats-{n}",
        "student_id": "s1",
        "type": "interaction",
        "name": "hint_opened",
        "occurred_at": "2024-05-01T10:00:00Z",
        **changes,
    }


@pytest.fixture
async def web(nats_server: NatsServer) -> AsyncIterator[WebHarness]:
    async with running_web(nats_server.url) as harness:
        yield harness


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


async def wait_stored(client: Client, count: int) -> None:
    async def reached() -> bool:
        return await events_stored(client) >= count

    await poll_until(reached, timeout=20, what=f"{count} events stored")


async def wait_dead_letters(client: Client, count: int) -> list[Any]:
    async def reached() -> bool:
        return await stream_count(client, DEADLETTER) >= count

    await poll_until(reached, timeout=20, what=f"{count} dead letters")
    return await read_stream(client, DEADLETTER)


async def test_core_publishes_reach_the_events_topic_once_each(web: WebHarness, client: Client) -> None:
    for item in EVENTS:
        await client.publish(subject_of(item), encoded(item))
    await wait_stored(client, len(EVENTS))
    assert await events_stored(client) == len(EVENTS)

    async def consumed() -> bool:
        return await stream_count(client, INGEST) == 0  # a work queue: acked messages leave it

    await poll_until(consumed, timeout=10, what="the ingest stream to empty")
    assert await stream_count(client, DEADLETTER) == 0


async def test_jetstream_publishes_are_acked_by_the_ingest_stream_and_forwarded(
    web: WebHarness, client: Client
) -> None:
    js = client.jetstream()
    for item in EVENTS[:50]:
        ack = await js.publish(subject_of(item), encoded(item))
        assert ack.stream == INGEST
    await wait_stored(client, 50)


async def test_the_forwarded_message_is_the_canonical_event(web: WebHarness, client: Client) -> None:
    offset = {**event(1), "occurred_at": "2024-05-01T12:00:00.500+02:00", "data": {"b": 1, "a": [1, 2]}}
    await client.publish("events.interaction.s1", json.dumps(offset, indent=2).encode())
    await wait_stored(client, 1)
    stored = [
        msg
        for partition in range(4)
        for msg in await read_stream(client, f"FAUST_events_{partition}")
    ]
    (msg,) = stored
    assert msg.data.startswith(
        b'{"events":[{"data":{"a":[1,2],"b":1},"event_id":"nats-1","name":"hint_opened",'
        b'"occurred_at":"2024-05-01T10:00:00.500000Z","student_id":"s1","type":"interaction"}],"arrived_at":['
    )
    assert msg.headers["Nats-Msg-Id"].startswith("batch-")


async def test_a_forwarded_event_carries_the_time_the_ingest_stream_stored_it(
    nats_server: NatsServer, client: Client
) -> None:
    # Stored while no web process runs: the bridge forwards it later, and its arrival must stay
    # the moment NATS first stored it, not the moment the backlog was worked off.
    await PublicStreams().ensure_ingest(client.jetstream())
    ack = await client.jetstream().publish("events.interaction.s1", encoded(event(2)))
    stored_at = (await client.jetstream().get_msg(INGEST, ack.seq)).time.timestamp()
    await asyncio.sleep(1.5)  # real time must pass for the backlog to be older than its forwarding
    async with running_web(nats_server.url):
        await wait_stored(client, 1)
        (stored,) = await stored_events(client)
    assert stored.arrived_at == pytest.approx(stored_at, abs=1e-6)
    assert stored.msg.metadata.timestamp.timestamp() >= stored_at + 1.5, "forwarded after the backlog waited"


INVALID: list[tuple[str, str, bytes, str]] = [
    ("malformed JSON", "events.interaction.s1", b'{"event_id": ', "(body): malformed JSON at line 1 column 13: EOF while parsing a value"),
    ("not an object", "events.interaction.s1", b"[1, 2]", "(event): must be a JSON object"),
    (
        "invalid fields",
        "events.game.s1",
        encoded(event(type="game", name="level_completed", data={"level": -1, "score": 3})),
        "game_id: field required; data.level: must be an integer >= 0 and <= 9007199254740992; "
        "data.duration_ms: field required",
    ),
    (
        "type mismatch",
        "events.game.s1",
        encoded(event()),
        "type: the event says 'interaction' but the subject says 'game'",
    ),
    (
        "student mismatch",
        "events.interaction.s2",
        encoded(event()),
        "student_id: the event says 's1' but the subject says 's2'",
    ),
    (
        "a wildcard subject token",
        "events.interaction.*",
        encoded(event()),
        "student_id: the event says 's1' but the subject says '*'",
    ),
    (
        "a wildcard id",
        "events.interaction.*",
        encoded(event(student_id="*")),
        "student_id: must be 1-64 characters of A-Z a-z 0-9 _ -",
    ),
    (
        "an id with a dot",
        "events.interaction.s1.x",
        encoded(event(student_id="s1.x")),
        "subject: must be events.<type>.<student_id> (3 tokens), got 4 tokens",
    ),
    (
        "a short subject",
        "events.interaction",
        encoded(event()),
        "subject: must be events.<type>.<student_id> (3 tokens), got 2 tokens",
    ),
    (
        "a greater-than id",
        "events.interaction.>",
        encoded(event(student_id=">")),
        "student_id: must be 1-64 characters of A-Z a-z 0-9 _ -",
    ),
]


@pytest.mark.parametrize(("subject", "payload", "reason"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
async def test_invalid_events_are_dead_lettered_with_the_reason_and_processing_continues(
    web: WebHarness, client: Client, subject: str, payload: bytes, reason: str
) -> None:
    before, after = event(100), event(101)
    await client.publish(subject_of(before), encoded(before))
    await client.publish(subject, payload)
    await client.publish(subject_of(after), encoded(after))
    (dead,) = await wait_dead_letters(client, 1)
    await wait_stored(client, 2)
    assert dead.subject == "deadletter.invalid"
    assert dead.headers[HDR_REASON] == reason
    assert dead.headers[HDR_ORIGINAL_SUBJECT] == subject
    assert dead.data == payload
    assert await events_stored(client) == 2


async def test_an_oversize_payload_is_dead_lettered_unread_and_cut(web: WebHarness, client: Client) -> None:
    huge = encoded(event(data={"blob": "x" * (MAX_EVENT_BYTES + 10)}))
    await client.publish("events.interaction.s1", huge)
    await client.publish("events.interaction.s1", encoded(event(2)))
    (dead,) = await wait_dead_letters(client, 1)
    assert dead.headers[HDR_REASON] == f"payload: {len(huge)} bytes; an event is at most {MAX_EVENT_BYTES} bytes"
    assert dead.headers[HDR_ORIGINAL_SIZE] == str(len(huge))
    assert dead.data == huge[:MAX_EVENT_BYTES]
    await wait_stored(client, 1)


async def test_reason_headers_are_one_line_of_ascii(web: WebHarness, client: Client) -> None:
    # A subject token may be any UTF-8; NATS headers are ASCII lines, so the reason escapes it.
    await client.publish("events.interaction.s\u00e9", encoded(event()))
    (dead,) = await wait_dead_letters(client, 1)
    assert dead.headers[HDR_REASON] == "student_id: the event says 's1' but the subject says 's\\xe9'"
    assert dead.headers[HDR_ORIGINAL_SUBJECT] == "events.interaction.s\\xe9"


async def test_a_payload_of_the_limit_is_judged_as_an_event(web: WebHarness, client: Client) -> None:
    body = encoded(event())
    padded = body + b" " * (MAX_EVENT_BYTES - len(body))
    await client.publish("events.interaction.s1", padded)
    await wait_stored(client, 1)


async def test_many_invalid_events_among_valid_ones(web: WebHarness, client: Client) -> None:
    for n, item in enumerate(EVENTS[:300]):
        await client.publish(subject_of(item), encoded(item))
        if n % 10 == 0:
            await client.publish(subject_of(item), b"not json")
    await wait_stored(client, 300)
    assert len(await wait_dead_letters(client, 30)) == 30
    assert await events_stored(client) == 300


async def test_a_redelivered_message_is_dead_lettered_once(web: WebHarness, client: Client) -> None:
    # The dead letter's id is the ingest stream sequence: JetStream drops a second copy.
    await client.publish("events.interaction.s1", b"nope")
    (dead,) = await wait_dead_letters(client, 1)
    ack = await client.jetstream().publish(
        "deadletter.invalid", dead.data, headers={"Nats-Msg-Id": dead.headers["Nats-Msg-Id"]}
    )
    assert ack.duplicate


# -- deduplication across the paths -------------------------------------------------------------


# Copies that come in other batches are stored; each window counts an event_id once (checked end
# to end, with both paths and the oracle, by tests/integration/test_learning_pipeline.py). Here:
# every copy is stored as the same canonical event, with its own arrival.


async def test_an_event_sent_over_http_and_nats_is_stored_as_one_event(web: WebHarness, client: Client) -> None:
    batch = EVENTS[:100]
    response = await web.post({"events": batch[:60]})
    assert await response.json() == {"accepted": 60, "duplicates": 0}
    for item in batch:
        await client.publish(subject_of(item), encoded(item))
    await poll_until(lambda: web.services.ingest.stats.forwarded >= 100, timeout=20, what="all forwarded")
    stored = await stored_events(client)
    assert len(stored) == 160
    copies: dict[str, list[dict]] = {}
    for item in stored:
        copies.setdefault(item.event["event_id"], []).append(item.event)
    assert len(copies) == 100 and all(len({json.dumps(c, sort_keys=True) for c in same}) == 1 for same in copies.values())


async def test_an_event_published_twice_over_nats_is_stored_as_one_event(web: WebHarness, client: Client) -> None:
    for _ in range(3):
        for item in EVENTS[:40]:
            await client.publish(subject_of(item), encoded(item))
    await poll_until(lambda: web.services.ingest.stats.forwarded >= 120, timeout=20, what="all forwarded")
    stored = await stored_events(client)
    # Copies pulled in one chunk are written once; copies in later chunks again.
    assert 40 <= len(stored) <= 120 and len({item.event["event_id"] for item in stored}) == 40


# -- several processes, restarts, stopping ------------------------------------------------------


async def test_two_web_processes_split_the_ingest_stream(nats_server: NatsServer, client: Client) -> None:
    async with running_web(nats_server.url) as first, running_web(nats_server.url) as second:
        for item in EVENTS:
            await client.publish(subject_of(item), encoded(item))
        await wait_stored(client, len(EVENTS))
        forwarded = (first.services.ingest.stats.forwarded, second.services.ingest.stats.forwarded)
    assert sum(forwarded) == len(EVENTS)  # nothing handled twice: the durable consumer splits
    assert min(forwarded) > 0, forwarded
    assert await events_stored(client) == len(EVENTS)


async def test_stopping_finishes_or_returns_every_pulled_message(nats_server: NatsServer, client: Client) -> None:
    async with running_web(nats_server.url) as web:
        for item in EVENTS:
            await client.publish(subject_of(item), encoded(item))
        await client.flush()
        await poll_until(lambda: web.services.ingest.stats.forwarded > 0, timeout=20, what="work to start")
    # Stopped mid-stream: each event is either forwarded or still waiting in the ingest stream,
    # and nothing is stuck delivered-but-unacked.
    info = await client.jetstream().consumer_info(INGEST, INGEST_CONSUMER)
    assert info.num_ack_pending == 0
    assert await events_stored(client) + await stream_count(client, INGEST) == len(EVENTS)


async def test_ingest_resumes_after_nats_restarts(nats_server: NatsServer, client: Client) -> None:
    async with running_web(nats_server.url) as web:
        await client.publish("events.interaction.s1", encoded(event(1)))
        await wait_stored(client, 1)
        await nats_server.kill()
        await nats_server.restart(graceful=False)

        async def ready() -> bool:
            return await web.services.ready()

        await poll_until(ready, timeout=20, what="the web services to reconnect")
        async with nats_client(nats_server.url) as fresh:
            await fresh.publish("events.interaction.s1", encoded(event(2)))
            await wait_stored(fresh, 2)
