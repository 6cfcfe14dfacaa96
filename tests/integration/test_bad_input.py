"""Bad input at every door: each refused with a clear error, and nothing of it stored.

Extends ``test_http_ingest.py`` (statuses, sizes, tokens, malformed JSON) and
``test_nats_ingest.py`` (subject rules, oversize payloads) with what a hostile or broken
producer sends: wrong types, missing fields, deep nesting, invalid UTF-8 and lone surrogates,
NaN and infinities, numbers too big for a float or beyond the contract's 2**53, times far in the
past and future, ids with NATS wildcard and separator characters; the same payloads over NATS, and a seeded fuzzer of mutated
events on random subjects. The query API refuses ids that could address other keys.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client

from bridges.public.nats_ingest import HDR_ORIGINAL_SUBJECT, HDR_REASON
from bridges.server import NatsServer
from testkit.metrics import describe_builtins
from testkit.streams import events_stored, nats_client, read_stream, stored_events, stream_count
from testkit.web import WebHarness, running_web
from testkit.workers import poll_until

pytestmark = pytest.mark.integration

T0 = 1_714_557_600  # 2024-05-01T10:00:00Z


def event(**changes: Any) -> dict[str, Any]:
    return {
        "event_id": "ev-1", "student_id": "s-42", "type": "engagement", "name": "heartbeat",
        "occurred_at": "2024-05-01T10:00:00Z", "data": {"seconds": 30}, **changes,
    }


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in event().items() if k != field}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def level_completed(score: str, **changes: Any) -> bytes:
    """A level_completed event whose ``score`` is the JSON text ``score``, as a producer wrote it."""
    document = event(
        type="game", name="level_completed", game_id="g-math", data={"level": 3, "score": 0, "duration_ms": 5400},
        **changes,
    )
    return json.dumps(document).replace('"score": 0', f'"score": {score}').encode()


#: the contract's rule for a score, stated in every refusal of one
SCORE_RULE = "must be a number >= 0 and <= 9007199254740992"


#: (case, body as bytes, the field of the first error)
INVALID_EVENTS: list[tuple[str, bytes, str]] = [
    ("student_id a number", json.dumps(event(student_id=42)).encode(), "student_id"),
    ("event_id an object", json.dumps(event(event_id={"$gt": ""})).encode(), "event_id"),
    ("occurred_at epoch seconds", json.dumps(event(occurred_at=T0)).encode(), "occurred_at"),
    ("data a list", json.dumps(event(data=[30])).encode(), "data"),
    ("seconds a string", json.dumps(event(data={"seconds": "30"})).encode(), "data.seconds"),
    ("type null", json.dumps(event(type=None)).encode(), "type"),
    ("missing event_id", json.dumps(without("event_id")).encode(), "event_id"),
    ("missing occurred_at", json.dumps(without("occurred_at")).encode(), "occurred_at"),
    ("student_id with *", json.dumps(event(student_id="s-*")).encode(), "student_id"),
    ("student_id >", json.dumps(event(student_id=">")).encode(), "student_id"),
    ("student_id with .", json.dumps(event(student_id="s.42")).encode(), "student_id"),
    ("game_id with *", json.dumps(event(type="game", name="level_started", game_id="g.*", data={"level": 1})).encode(), "game_id"),
    ("event_id with >", json.dumps(event(event_id="ev>1")).encode(), "event_id"),
    ("event_id with a space", json.dumps(event(event_id="ev 1")).encode(), "event_id"),
    ("student_id unicode", json.dumps(event(student_id="s\u00e9")).encode(), "student_id"),
    ("student_id too long", json.dumps(event(student_id="s" * 65)).encode(), "student_id"),
    ("year 9999", json.dumps(event(occurred_at="9999-12-31T23:59:59Z")).encode(), "occurred_at"),
    ("an hour ahead", json.dumps(event(occurred_at="2024-05-01T11:00:00Z")).encode(), "occurred_at"),
    ("year 0000", json.dumps(event(occurred_at="0000-01-01T00:00:00Z")).encode(), "occurred_at"),
    ("February 30th", json.dumps(event(occurred_at="2024-02-30T10:00:00Z")).encode(), "occurred_at"),
    ("no offset", json.dumps(event(occurred_at="2024-05-01T10:00:00")).encode(), "occurred_at"),
    ("a float too big", b'{"event_id":"ev-1","student_id":"s-42","type":"engagement","name":"heartbeat",'
     b'"occurred_at":"2024-05-01T10:00:00Z","data":{"seconds":1e400}}', "data.seconds"),
    ("score 10**400", level_completed("1" + "0" * 400), "data.score"),
    ("score 1e308", level_completed("1e308"), "data.score"),
    ("score 2**53 + 1", level_completed(str(2**53 + 1)), "data.score"),
    ("a number beyond 2**53 deep in data",
     json.dumps(event(data={"seconds": 30, "items": [{"x": 1}, {"x": -(2**53) - 1}]})).encode(), "data.items.1.x"),
    ("data over 16 KiB", json.dumps(event(data={"seconds": 30, "blob": "x" * 17_000})).encode(), "data"),
]

#: (case, body) that are not JSON at all
MALFORMED: list[tuple[str, bytes]] = [
    ("NaN in data", b'{"event_id":"ev-1","data":{"seconds":NaN}}'),
    ("Infinity in data", b'{"event_id":"ev-1","data":{"seconds":Infinity}}'),
    ("-Infinity in data", b'{"event_id":"ev-1","data":{"seconds":-Infinity}}'),
    ("invalid UTF-8 inside a string", b'{"event_id":"ev-\xff\xfe","student_id":"s-42"}'),
    ("truncated UTF-8", b'{"event_id":"ev-\xe2\x82"}'),
    ("nesting beyond the parser's limit", json.dumps(event(data={"x": json.loads(nested(200))})).encode()),
    ("a lone surrogate escape", json.dumps(event(student_id="s-\ud800")).encode()),
    ("two documents", json.dumps(event()).encode() * 2),
]


@pytest.fixture
async def web(nats_server: NatsServer) -> AsyncIterator[WebHarness]:
    async with running_web(nats_server.url, clock=lambda: T0 + 60.0) as harness:
        yield harness


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


# -- HTTP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in INVALID_EVENTS], ids=[c[0] for c in INVALID_EVENTS])
async def test_an_invalid_event_is_422_naming_the_field_and_nothing_is_stored(
    web: WebHarness, client: Client, body: bytes, field: str
) -> None:
    response = await web.post(body)
    assert response.status == 422, await response.text()
    errors = (await response.json())["errors"]
    assert field in [e["field"] for e in errors], errors
    assert all(e["message"] for e in errors)
    # The same event inside a batch of valid ones: the whole batch is refused.
    batch = b'{"events":[' + json.dumps(event(event_id="ok-1")).encode() + b"," + body + b"]}"
    assert (await web.post(batch)).status == 422
    assert await events_stored(client) == 0


async def test_an_unknown_field_is_left_out_not_refused(web: WebHarness, client: Client) -> None:
    # Deliberate (docs/api.md, compatibility): a producer newer than this server may send a field
    # it does not know yet; refusing it would cut that producer off. Known fields are still checked.
    response = await web.post(event(admin=True, client={"version": "2.1"}))
    assert (response.status, await response.json()) == (202, {"accepted": 1, "duplicates": 0})
    (stored,) = await stored_events(client)
    assert "admin" not in stored.event and "client" not in stored.event
    assert stored.event["event_id"] == "ev-1"
    response = await web.post(event(event_id="ev-2", admin=True, student_id="s.42"))
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["student_id"]


async def test_a_score_beyond_2_53_is_422_naming_data_score_and_nothing_of_the_batch_is_stored(
    web: WebHarness, client: Client
) -> None:
    huge = "1" + "0" * 400  # JSON allows any number of digits; doubles do not
    response = await web.post(level_completed(huge))
    assert response.status == 422
    assert await response.json() == {"errors": [{"index": 0, "field": "data.score", "message": SCORE_RULE}]}
    # Second in a batch after a valid event: the valid one is not stored either.
    batch = b'{"events":[' + json.dumps(event(event_id="ok-1")).encode() + b"," + level_completed(huge) + b"]}"
    response = await web.post(batch)
    assert response.status == 422
    assert await response.json() == {"errors": [{"index": 1, "field": "data.score", "message": SCORE_RULE}]}
    assert await events_stored(client) == 0
    # The bound itself is a score, stored exactly as sent.
    response = await web.post(level_completed(str(2**53), event_id="at-the-bound"))
    assert (response.status, await response.json()) == (202, {"accepted": 1, "duplicates": 0})
    (stored,) = await stored_events(client)
    assert stored.event["data"]["score"] == 2**53 == 9007199254740992


@pytest.mark.parametrize("body", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
async def test_what_is_not_json_is_400_with_the_position_and_nothing_is_stored(
    web: WebHarness, client: Client, body: bytes
) -> None:
    response = await web.post(body)
    assert response.status == 400, await response.text()
    (error,) = (await response.json())["errors"]
    assert error["index"] == -1 and error["message"].startswith("malformed JSON at line")
    assert await events_stored(client) == 0


async def test_a_time_far_in_the_past_is_accepted_as_an_event_of_its_time(web: WebHarness, client: Client) -> None:
    # The contract bounds only the future; an old event is stored, and the metric workers
    # dead-letter it as late (tests/integration/test_metric_workers.py).
    response = await web.post(event(occurred_at="0001-01-01T00:00:00Z"))
    assert (response.status, await response.json()) == (202, {"accepted": 1, "duplicates": 0})
    assert await events_stored(client) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/v1/metrics/engagement/s-*", "/v1/metrics/engagement/%2A", "/v1/metrics/engagement/%3E",
        "/v1/metrics/engagement/s.42", "/v1/metrics/engagement/s%2E42",
        "/v1/metrics/engagement/s%00", "/v1/metrics/engagement/s%C3%A9/latest",
        "/v1/metrics/outcomes/s-42?game_id=*", "/v1/metrics/outcomes/s-42/latest?game_id=g.%3E",
        "/v1/metrics/engagement/" + "s" * 65,
    ],
)
async def test_the_query_api_refuses_ids_that_could_address_other_keys(web: WebHarness, client: Client, path: str) -> None:
    await describe_builtins(client)  # as their workers do at start: the metrics are known
    response = await web.http.get(path)
    assert response.status == 422, (path, response.status, await response.text())
    errors = (await response.json())["errors"]
    assert {e["field"] for e in errors} & {"student_id", "game_id"}, errors


# -- NATS -----------------------------------------------------------------------------------------


async def dead_letters_when(client: Client, count: int) -> list[Any]:
    async def enough() -> bool:
        return await stream_count(client, "FAUST_DEADLETTER") >= count

    await poll_until(enough, timeout=30, what=f"{count} dead letters")
    return await read_stream(client, "FAUST_DEADLETTER")


async def test_the_same_bad_payloads_over_nats_are_dead_lettered_with_a_reason(web: WebHarness, client: Client) -> None:
    # Over NATS "ahead" is judged against the event's arrival (when the ingest stream stored it,
    # by the server's clock), which the harness's clock does not govern: an hour ahead of now.
    ahead = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    payloads = [
        json.dumps(event(occurred_at=ahead)).encode() if case == "an hour ahead" else body
        for case, body, _ in INVALID_EVENTS
    ] + [body for _, body in MALFORMED]
    for body in payloads:
        await client.publish("events.engagement.s-42", body)
    letters = await dead_letters_when(client, len(payloads))
    assert len(letters) == len(payloads)
    assert sorted(m.data for m in letters) == sorted(payloads)  # all under 64 KiB: kept whole
    assert all(m.headers[HDR_REASON] for m in letters)
    assert await events_stored(client) == 0


async def test_a_score_beyond_2_53_over_nats_is_dead_lettered_with_the_field_and_the_rule(
    web: WebHarness, client: Client
) -> None:
    payload = level_completed("1" + "0" * 400, event_id="nats-huge")
    await client.publish("events.game.s-42", payload)
    # A valid event right behind it still goes through: one bad number stops nothing else.
    await client.publish("events.game.s-42", level_completed("120", event_id="nats-ok"))
    (letter,) = await dead_letters_when(client, 1)
    assert letter.subject == "deadletter.invalid"
    assert letter.headers[HDR_REASON] == f"data.score: {SCORE_RULE}"
    assert letter.headers[HDR_ORIGINAL_SUBJECT] == "events.game.s-42"
    assert letter.data == payload

    async def forwarded() -> bool:
        return await events_stored(client) == 1

    await poll_until(forwarded, timeout=30, what="the valid event forwarded")
    (stored,) = await stored_events(client)
    assert stored.event["event_id"] == "nats-ok"


def mutations(rng: random.Random, count: int) -> list[tuple[str, bytes, bool]]:
    """``count`` (subject, payload, intact) made by breaking a valid event at random; about one
    in seven is left intact."""
    base = json.dumps(event(occurred_at="2024-05-01T10:00:30Z")).encode()
    tokens = ["engagement", "game", "interaction", "s-42", "s-43", "*", ">", "", "events", "x" * 300, "\u00e9"]
    out = []
    for n in range(count):
        kind = rng.randrange(7)
        subject = "events.engagement.s-42"
        payload = base
        if kind == 0:  # flipped bytes
            raw = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            payload = bytes(raw)
        elif kind == 1:  # cut short
            payload = base[: rng.randrange(len(base))]
        elif kind == 2:  # other subject tokens
            subject = ".".join(["events", *(rng.choice(tokens) or "t" for _ in range(rng.randint(1, 4)))])
        elif kind == 3:  # a field of another type
            document = json.loads(base)
            document[rng.choice(list(document))] = rng.choice([None, 1, 1.5, True, [], {}, "", "x" * 200])
            payload = json.dumps(document).encode()
        elif kind == 4:  # random bytes
            payload = rng.randbytes(rng.randint(0, 64))
        elif kind == 5:  # oversize
            payload = base[:-1] + b',"pad":"' + b"x" * (70_000 + rng.randrange(1000)) + b'"}'
        # kind 6: left intact, to be stored among the broken ones.
        # Each message gets its own id, so none is a duplicate of another that passed.
        out.append((subject, payload.replace(b"ev-1", b"m%04d" % n), kind == 6))
    return out


async def test_fuzzed_nats_payloads_end_as_one_stored_event_or_one_dead_letter_each(
    web: WebHarness, client: Client
) -> None:
    sent = mutations(random.Random(2024), 300)
    for subject, payload, _ in sent:
        await client.publish(subject, payload)
    await client.flush()

    async def settled() -> bool:
        stored = await events_stored(client)
        dead = await stream_count(client, "FAUST_DEADLETTER")
        return stored + dead >= len(sent) and await stream_count(client, "FAUST_INGEST") == 0

    await poll_until(settled, timeout=60, what="every fuzzed message forwarded or dead-lettered")
    letters = await read_stream(client, "FAUST_DEADLETTER")
    assert all(m.headers.get(HDR_REASON) for m in letters)
    stored = [item.event for item in await stored_events(client)]
    assert len(stored) + len(letters) == len(sent)
    # What was stored is valid by the contract (a mutation can leave an event valid, never a
    # broken one stored): its ids are ids and it came from a subject naming its type and student.
    for document in stored:
        assert document["student_id"] in ("s-42", "s-43") and document["type"] == "engagement"
    intact = {json.loads(payload)["event_id"] for _, payload, whole in sent if whole}
    assert intact and intact <= {document["event_id"] for document in stored}
    print(f"FAULTS nats-fuzz sent={len(sent)} stored={len(stored)} dead_lettered={len(letters)}")
