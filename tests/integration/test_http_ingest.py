"""POST /v1/events against a real nats-server: every status, what is stored, and retries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridges.limits import MIB
from bridges.naming import Naming
from bridges.server import NatsServer
from bridges.transport.envelope import HDR_KEY, HDR_MSG_ID, HDR_TS
from bridges.transport.session import partition_for_key
from tables.batch import BATCH_PREFIX
from testkit.oracle import generate_sessions
from testkit.storage import fill_store, raise_store_limit, store_config
from testkit.streams import PARTITIONS, events_stored, nats_client, read_stream, stored_events
from testkit.web import WebHarness, running_web, token_comparisons
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

T0 = 1_714_557_600  # 2024-05-01T10:00:00Z
EVENTS = generate_sessions(seed=5, students=20, minutes=10, start_epoch=T0)  # 947 events
NAMING = Naming("faust")


def event(n: int = 0, **changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "student_id": "s-42",
        "type": "interaction",
        "name": "answer_submitted",
        "occurred_at": "2024-05-01T10:00:00Z",
        "data": {"correct": True},
        **changes,
    }


@pytest.fixture
async def web(nats_server: NatsServer) -> AsyncIterator[WebHarness]:
    async with running_web(nats_server.url) as harness:
        yield harness


async def stored(harness: WebHarness) -> int:
    async with nats_client(harness.nats_url) as client:
        return await events_stored(client)


async def errors_of(response: Any) -> list[dict[str, Any]]:
    body = await response.json()
    assert set(body) == {"errors"}
    return body["errors"]


# -- 202 --------------------------------------------------------------------------------------


async def test_a_batch_is_stored_once_per_event_and_answered_202(web: WebHarness) -> None:
    response = await web.post({"events": EVENTS[:300]})
    assert response.status == 202
    assert await response.json() == {"accepted": 300, "duplicates": 0}
    assert await stored(web) == 300


async def test_a_single_event_body_is_accepted(web: WebHarness) -> None:
    response = await web.post(event())
    assert (response.status, await response.json()) == (202, {"accepted": 1, "duplicates": 0})


async def test_the_stored_record_is_a_batch_of_canonical_events_in_the_students_partition(web: WebHarness) -> None:
    before = time.time()
    body = {"events": [event(7, student_id="s-99", occurred_at="2024-05-01T12:00:00+02:00"), event(8, student_id="s-99")]}
    response = await web.post(body)
    assert response.status == 202
    partition = partition_for_key(b"s-99", PARTITIONS)
    async with nats_client(web.nats_url) as client:
        (msg,) = await read_stream(client, NAMING.stream("events", partition))
    assert msg.subject == NAMING.subject("events", partition)
    assert msg.headers[HDR_MSG_ID].startswith("batch-")
    assert HDR_KEY not in msg.headers  # a batch may hold several students' events
    # First stored here: no timestamp and no arrivals, so readers take the stored time as arrival.
    assert HDR_TS not in msg.headers
    assert before <= msg.metadata.timestamp.timestamp() <= time.time()
    # One record, the events in order, each in its canonical JSON: sorted keys, UTC with Z.
    assert msg.data.startswith(BATCH_PREFIX) and b"arrived_at" not in msg.data
    events = json.loads(msg.data)["events"]
    assert events == [{**event(7, student_id="s-99"), "occurred_at": "2024-05-01T10:00:00Z"}, event(8, student_id="s-99")]
    canonical = b",".join(json.dumps(e, sort_keys=True, separators=(",", ":")).encode() for e in events)
    assert canonical in msg.data


async def test_one_students_events_share_a_partition(web: WebHarness) -> None:
    assert (await web.post({"events": EVENTS[:400]})).status == 202
    async with nats_client(web.nats_url) as client:
        stored_now = await stored_events(client)
    assert len(stored_now) == 400
    for item in stored_now:
        assert partition_for_key(item.event["student_id"].encode(), PARTITIONS) == item.partition
    # In each partition, a student's events keep the order they were sent in.
    sent = {e["event_id"]: n for n, e in enumerate(EVENTS[:400])}
    for partition in range(PARTITIONS):
        order = [sent[i.event["event_id"]] for i in stored_now if i.partition == partition]
        assert order == sorted(order)


# -- duplicates ---------------------------------------------------------------------------------


async def test_a_repeated_batch_is_all_duplicates_and_stored_once(web: WebHarness) -> None:
    first = await web.post({"events": EVENTS[:200]})
    again = await web.post({"events": EVENTS[:200]})
    assert await first.json() == {"accepted": 200, "duplicates": 0}
    assert await again.json() == {"accepted": 0, "duplicates": 200}
    assert await stored(web) == 200
    # An overlapping request is another batch: stored, and each event_id counted once by the
    # windows (tests/integration/test_metric_workers.py checks that end to end).
    overlapping = await web.post({"events": EVENTS[100:250]})
    assert await overlapping.json() == {"accepted": 150, "duplicates": 0}


async def test_an_id_repeated_inside_one_batch_counts_once(web: WebHarness) -> None:
    response = await web.post({"events": [event(1), event(2), event(1)]})
    assert await response.json() == {"accepted": 2, "duplicates": 1}
    assert await stored(web) == 2


async def test_concurrent_retries_of_one_batch_store_it_once(web: WebHarness) -> None:
    batch = {"events": EVENTS[:100]}
    answers = await asyncio.gather(*(web.post(batch) for _ in range(4)))
    bodies = [await answer.json() for answer in answers]
    assert sum(body["accepted"] for body in bodies) == 100
    assert sum(body["duplicates"] for body in bodies) == 300
    assert await stored(web) == 100


async def test_the_events_streams_keep_ids_for_ten_minutes(web: WebHarness) -> None:
    async with nats_client(web.nats_url) as client:
        for partition in range(PARTITIONS):
            info = await client.jetstream().stream_info(NAMING.stream("events", partition))
            assert info.config.duplicate_window == 600


# -- 422, 400 ----------------------------------------------------------------------------------


async def test_one_invalid_event_stores_nothing_and_every_problem_is_listed(web: WebHarness) -> None:
    batch = [event(1), event(2, student_id="s*1"), event(3), event(4, type="quiz", occurred_at="soon")]
    response = await web.post({"events": batch})
    assert response.status == 422
    assert await errors_of(response) == [
        {"index": 1, "field": "student_id", "message": "must be 1-64 characters of A-Z a-z 0-9 _ -"},
        {"index": 3, "field": "type", "message": "must be one of game, interaction, engagement"},
        {"index": 3, "field": "occurred_at", "message": "must be RFC 3339 with a UTC offset"},
    ]
    assert await stored(web) == 0


async def test_an_invalid_event_after_valid_batches_changes_nothing_stored(web: WebHarness) -> None:
    assert (await web.post({"events": EVENTS[:50]})).status == 202
    bad = [*EVENTS[50:100], {**EVENTS[100], "game_id": None}]
    assert (await web.post({"events": bad})).status == 422
    assert await stored(web) == 50


async def test_the_envelope_is_checked(web: WebHarness) -> None:
    too_many = {"events": [event(n) for n in range(1001)]}
    response = await web.post(too_many)
    assert (response.status, await errors_of(response)) == (
        422, [{"index": -1, "field": "events", "message": "must be a list of 1 to 1000 events"}],
    )
    assert (await web.post({"events": []})).status == 422
    assert (await web.post([event()])).status == 422
    assert await stored(web) == 0


async def test_an_event_from_the_future_is_refused(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url, clock=lambda: T0 - 301.0) as web:
        response = await web.post(event())
        assert (response.status, await errors_of(response)) == (
            422, [{"index": 0, "field": "occurred_at", "message": "is more than 5 minutes in the future"}],
        )


@pytest.mark.parametrize("body", [b"{", b"", b'{"events": [}', b"\xff\xfe", b"NaN"])
async def test_malformed_json_is_400(web: WebHarness, body: bytes) -> None:
    response = await web.post(body)
    assert response.status == 400
    (error,) = await errors_of(response)
    assert error["index"] == -1 and error["message"].startswith("malformed JSON at line")


# -- 415, 413 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "application/jsonx"],
)
async def test_other_content_types_are_415(web: WebHarness, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await web.http.post("/v1/events", data=json.dumps(event()).encode(), headers=headers)
    if content_type is None:  # aiohttp's client names raw bytes application/octet-stream
        assert response.request_info.headers["Content-Type"] == "application/octet-stream"
    assert response.status == 415
    assert await errors_of(response) == [
        {"index": -1, "field": "Content-Type", "message": "must be application/json"}
    ]
    assert await stored(web) == 0


async def test_json_with_a_utf8_charset_is_accepted(web: WebHarness) -> None:
    response = await web.http.post(
        "/v1/events", data=json.dumps(event()).encode(), headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert response.status == 202


def padded(size: int) -> bytes:
    """A valid single-event body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = json.dumps(event()).encode()
    return body + b" " * (size - len(body))


async def test_a_body_of_exactly_1_mib_is_read(web: WebHarness) -> None:
    response = await web.post(padded(1024 * 1024))
    assert response.status == 202


async def test_a_declared_length_over_1_mib_is_413_without_reading(web: WebHarness) -> None:
    response = await web.post(padded(1024 * 1024 + 1))
    assert response.status == 413
    assert await errors_of(response) == [
        {"index": -1, "field": "(body)", "message": "must be at most 1048576 bytes"}
    ]
    assert await stored(web) == 0


async def test_a_chunked_body_is_cut_off_at_1_mib(web: WebHarness) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        body = padded(3 * 1024 * 1024)
        for start in range(0, len(body), 64 * 1024):
            sent += 64 * 1024
            yield body[start : start + 64 * 1024]

    # No Content-Length: aiohttp sends a generator with chunked transfer encoding.
    response = await web.http.post("/v1/events", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert response.status == 413
    assert await stored(web) == 0


# -- 401 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None, "", "Bearer", "Bearer ", "Bearer wrong", "Bearer  s3cret-token", "Bearer s3cret-toke",
        "Bearer s3cret-token2", "Basic s3cret-token", "s3cret-token",
    ],
)
async def test_without_the_right_bearer_token_it_is_401_and_nothing_is_stored(
    nats_server: NatsServer, authorization: str | None
) -> None:
    async with running_web(nats_server.url, token="s3cret-token") as web:
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = await web.post(event(), headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert await errors_of(response) == [
            {"index": -1, "field": "Authorization", "message": "missing or wrong bearer token"}
        ]
        assert await stored(web) == 0


async def test_with_the_bearer_token_it_is_accepted(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url, token="s3cret-token") as web:
        for n, scheme in enumerate(["Bearer", "bearer", "BEARER"]):  # schemes are case-insensitive
            response = await web.post(event(n), headers={"Authorization": f"{scheme} s3cret-token"})
            assert response.status == 202


async def test_authentication_comes_before_everything_else(nats_server: NatsServer) -> None:
    async with running_web(nats_server.url, token="s3cret-token") as web:
        response = await web.http.post("/v1/events", data=b"{", headers={"Content-Type": "text/plain"})
        assert response.status == 401


async def test_the_token_is_compared_in_constant_time(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    compared = token_comparisons(monkeypatch)  # the one check, which reads use too
    async with running_web(nats_server.url, token="s3cret-token") as web:
        await web.post(event(), headers={"Authorization": "Bearer nope"})
    assert compared == [(b"nope", b"s3cret-token")]


# -- 503 ---------------------------------------------------------------------------------------


async def test_nats_down_is_503_with_retry_after_and_the_retry_stores_the_batch_once(
    nats_server: NatsServer,
) -> None:
    batch = {"events": EVENTS[:150]}
    async with running_web(nats_server.url) as web:
        await nats_server.kill()
        await poll_until(lambda: not web.services.sink.available, timeout=10, what="the client to notice")
        response = await web.post(batch)
        assert response.status == 503
        assert int(response.headers["Retry-After"]) > 0
        assert (await errors_of(response))[0]["message"].startswith("NATS is unavailable")
        readiness = await web.http.get("/readyz")
        assert (readiness.status, await readiness.json()) == (
            503, {"status": "unavailable", "reason": "NATS is not connected"},
        )
        assert (await web.http.get("/healthz")).status == 200

        await nats_server.restart(graceful=False)

        async def ready() -> bool:
            return (await web.http.get("/readyz")).status == 200

        await poll_until(ready, timeout=20, what="readyz to come back")
        retried = await web.post(batch)
        assert (retried.status, await retried.json()) == (202, {"accepted": 150, "duplicates": 0})
        again = await web.post(batch)
        assert await again.json() == {"accepted": 0, "duplicates": 150}
        assert await stored(web) == 150


async def test_storage_full_is_503_at_once_saying_so_until_the_store_has_room(tmp_path: Path) -> None:
    # Room for what the web process's streams reserve (the topics bucket's 64 MiB), then filled.
    limit = 80 * MIB
    config = store_config(tmp_path / "nats.conf", limit)
    batch = {"events": EVENTS[:150]}
    async with NatsServer(tmp_path / "nats", config_file=config) as server, running_web(server.url) as web:
        assert (await web.post({"events": EVENTS[150:160]})).status == 202
        await fill_store(server.url, limit)
        started = time.monotonic()
        response = await web.post(batch)
        took = time.monotonic() - started
        assert response.status == 503
        assert took < 2.0  # not the 10 s acknowledgement deadline
        assert int(response.headers["Retry-After"]) > 0
        (error,) = await errors_of(response)
        assert error["message"] == "storage full: the event store has no room; retry the whole request later"
        readiness = await web.http.get("/readyz")
        body = await readiness.json()
        assert (readiness.status, body["status"]) == (503, "unavailable")
        assert body["reason"].startswith("storage full: the JetStream store of the server is full")
        assert (await web.http.get("/readyz")).status == 503  # asked again: still full
        assert web.services.sink.storage.full

        await raise_store_limit(server, 2 * limit)
        readiness = await web.http.get("/readyz")
        assert (readiness.status, await readiness.json()) == (200, {"status": "ok"})
        retried = await web.post(batch)
        assert (retried.status, await retried.json()) == (202, {"accepted": 150, "duplicates": 0})
        assert await stored(web) == 160


async def test_acks_that_do_not_come_in_time_are_503(nats_server: NatsServer) -> None:
    # A stream that never answers: the events topic's partition streams are deleted, so each
    # publish meets "no responders" and is retried until the request's deadline.
    async with running_web(nats_server.url, ack_deadline=0.5) as web:
        async with nats_client(nats_server.url) as client:
            for partition in range(PARTITIONS):
                await client.jetstream().delete_stream(NAMING.stream("events", partition))
        started = time.monotonic()
        response = await web.post({"events": EVENTS[:10]})
        assert response.status == 503
        assert "Retry-After" in response.headers
        assert time.monotonic() - started < 5
