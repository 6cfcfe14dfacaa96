"""WindowResults against a real nats-server: provisional values, final values, and who may replace what.

Each writer has its own transport session (its own connection and publisher), as two workers of
one agent do: ``old`` plays a partition's previous owner, ``new`` the worker that took it over.
The bucket is made with a deep history here, so each test can read every value a key ever held.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from nats.js.kv import KeyValue

from bridges.connection import ConnectionSettings
from bridges.jetstream import ensure_bucket
from bridges.public.streams import METRICS_BUCKET, PublicStreams
from bridges.public.window_results import WindowResults
from bridges.server import NatsServer
from bridges.transport.options import TransportOptions
from bridges.transport.session import TransportSession

pytestmark = pytest.mark.integration

KEY = "engagement.s-42.1714557600"
SUBJECT = "results.engagement.s-42"
DEADLINE = 30.0


def document(events: int, *, final: bool) -> bytes:
    return json.dumps(
        {
            "metric": "engagement",
            "key": {"student_id": "s-42"},
            "window": {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:01:00Z"},
            "final": final,
            "events": events,
            "values": {"interactions": events},
        }
    ).encode()


@pytest.fixture
async def reader(nats_server: NatsServer) -> AsyncIterator[TransportSession]:
    session = TransportSession(ConnectionSettings.from_urls(nats_server.url), TransportOptions(), "reader")
    await session.acquire()
    yield session
    await session.release()


@pytest.fixture
async def kv(reader: TransportSession) -> KeyValue:
    return await ensure_bucket(reader.js, METRICS_BUCKET, history=64)


@pytest.fixture
async def writers(nats_server: NatsServer, kv: KeyValue) -> AsyncIterator[dict[str, WindowResults]]:
    settings = ConnectionSettings.from_urls(nats_server.url, connect_deadline=20)
    out = {
        name: WindowResults(TransportSession(settings, TransportOptions(), name), PublicStreams())
        for name in ("old", "new", "late")
    }
    for writer in out.values():
        await writer.start()
    yield out
    for writer in out.values():
        await writer.close()


async def history(kv: KeyValue, key: str = KEY) -> list[tuple[bool, int]]:
    """(final, events) of every value the key held, oldest first."""
    return [(json.loads(e.value)["final"], json.loads(e.value)["events"]) for e in await kv.history(key)]


async def final(writer: WindowResults, payload: bytes) -> None:
    await asyncio.wait_for(await writer.write_result(KEY, SUBJECT, payload), DEADLINE)


async def provisional(writer: WindowResults, payload: bytes) -> None:
    """Write a provisional value and wait until it is stored or dropped."""
    await asyncio.wait_for(await writer.write_provisional(KEY, payload), DEADLINE)


#: where the writers log (final values are written by bridges.public.fenced_writes)
LOGGERS = ("bridges.public.window_results", "bridges.public.fenced_writes")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name in LOGGERS and r.levelno >= logging.ERROR]


def debug(caplog: pytest.LogCaptureFixture) -> None:
    for logger in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=logger)


def replaced(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Final writes that found a provisional value they did not expect and replaced it."""
    return [r.getMessage() for r in caplog.records if "replacing the provisional value" in r.getMessage()]


async def test_provisional_values_are_replaced_in_turn_and_then_by_the_final_one(
    writers: dict[str, WindowResults], kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    debug(caplog)
    writer = writers["new"]
    await provisional(writer, document(1, final=False))
    await provisional(writer, document(2, final=False))
    await final(writer, document(3, final=True))
    assert await history(kv) == [(False, 1), (False, 2), (True, 3)]
    assert not replaced(caplog), "each write stated the revision of the one before"
    assert not errors(caplog)


async def test_a_final_write_replaces_a_provisional_value_it_did_not_know_of(
    writers: dict[str, WindowResults], kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    debug(caplog)
    # The old owner wrote a provisional value, then lost the partition; the new owner never saw
    # that write's revision, so its final write (expecting no key) is refused, reads, and replaces it.
    await provisional(writers["old"], document(1, final=False))
    await final(writers["new"], document(2, final=True))
    assert await history(kv) == [(False, 1), (True, 2)]
    assert replaced(caplog) == [f"window {KEY}: replacing the provisional value at revision 1"]
    assert not errors(caplog)


async def test_no_provisional_value_is_ever_written_over_a_final_one(
    writers: dict[str, WindowResults], kv: KeyValue
) -> None:
    old, new, late = writers["old"], writers["new"], writers["late"]
    await provisional(old, document(1, final=False))
    await final(new, document(2, final=True))
    revision = (await kv.get(KEY)).revision
    # The old owner (a zombie) states the revision of its own last write; a worker that knows
    # nothing states "no key". Both are refused, dropped quietly, and the final value stays.
    await provisional(old, document(5, final=False))
    await provisional(late, document(6, final=False))
    await provisional(old, document(7, final=False))
    entry = await kv.get(KEY)
    assert entry.revision == revision
    assert json.loads(entry.value) == json.loads(document(2, final=True))
    assert await history(kv) == [(False, 1), (True, 2)]


async def test_a_new_owner_takes_the_provisional_values_over_from_the_old_one(
    writers: dict[str, WindowResults], kv: KeyValue
) -> None:
    await provisional(writers["old"], document(1, final=False))
    # Refused (it expected no key), it reads the old owner's value and sends its own over it.
    await provisional(writers["new"], document(2, final=False))
    await provisional(writers["new"], document(3, final=False))
    await final(writers["new"], document(4, final=True))
    assert await history(kv) == [(False, 1), (False, 2), (False, 3), (True, 4)]


async def test_the_final_write_goes_after_the_provisional_one_in_flight(
    writers: dict[str, WindowResults], kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    debug(caplog)
    writer = writers["new"]
    # The first value is sent, the next wait behind it (only the newest) - unless its ack is
    # back already. The window closes meanwhile: its final write waits for the write in flight,
    # drops the waiting value, and states the revision the write in flight got.
    in_flight = await writer.write_provisional(KEY, document(1, final=False))
    await writer.write_provisional(KEY, document(2, final=False))
    await writer.write_provisional(KEY, document(3, final=False))
    await final(writer, document(4, final=True))
    await asyncio.wait_for(in_flight, DEADLINE)
    values = await history(kv)
    assert values[0] == (False, 1) and values[-1] == (True, 4)
    assert all(not is_final for is_final, _ in values[:-1]), values
    assert not replaced(caplog), "the final write stated another revision than the last provisional one's"


async def test_a_final_value_closed_again_is_compared_and_kept(
    writers: dict[str, WindowResults], kv: KeyValue, reader: TransportSession, caplog: pytest.LogCaptureFixture
) -> None:
    await provisional(writers["old"], document(1, final=False))
    await final(writers["old"], document(2, final=True))
    await final(writers["new"], document(2, final=True))  # a replay: the same value, quietly
    assert not errors(caplog)
    await final(writers["late"], document(9, final=True))
    assert await history(kv) == [(False, 1), (True, 2)]
    (message,) = errors(caplog)
    assert message.startswith(f"window {KEY} was already final with another value; keeping (and publishing)")
    # What went out on the result subject is what KV holds, once (the replays were duplicates).
    stream = PublicStreams().results
    assert (await reader.js.stream_info(stream)).state.messages == 1
    message_data = (await reader.js.get_last_msg(stream, SUBJECT)).data
    assert json.loads(message_data) == json.loads(document(2, final=True))


async def test_the_final_value_is_published_on_the_result_subject_and_provisional_ones_are_not(
    writers: dict[str, WindowResults], reader: TransportSession
) -> None:
    writer = writers["new"]
    await provisional(writer, document(1, final=False))
    await final(writer, document(2, final=True))
    stream = PublicStreams().results
    assert (await reader.js.stream_info(stream)).state.messages == 1
    message = await reader.js.get_last_msg(stream, SUBJECT)
    assert json.loads(message.data) == json.loads(document(2, final=True))


async def test_a_final_write_replaces_a_delete_marker(
    writers: dict[str, WindowResults], kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    debug(caplog)
    # Someone deleted the key (an operator, a clean-up): the marker is the key's last entry, so a
    # write stating "no key" is refused; the final value goes over the marker.
    await provisional(writers["old"], document(1, final=False))
    assert await kv.delete(KEY)
    await final(writers["new"], document(2, final=True))
    assert json.loads((await kv.get(KEY)).value) == json.loads(document(2, final=True))
    assert any("replacing the delete marker at revision" in m for m in caplog.messages), caplog.messages
    assert not errors(caplog)


async def test_closing_finishes_a_final_write_waiting_behind_a_provisional_one(
    writers: dict[str, WindowResults], kv: KeyValue
) -> None:
    writer = writers["new"]
    await writer.write_provisional(KEY, document(1, final=False))  # in flight, not awaited
    written = await writer.write_result(KEY, SUBJECT, document(2, final=True))
    await writer.close()  # a SIGTERM arriving now
    await asyncio.wait_for(written, DEADLINE)  # stored, not failed by the close
    assert (await history(kv))[-1] == (True, 2)
