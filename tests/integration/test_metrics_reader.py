"""The metrics KV reader: ranges by window start, the latest final window, and watches.

The workers' descriptions of the built-in metrics are in the registry (as when they run), so the
reader knows each metric's key fields and windows. Every query test runs against two readers: one
with a clock just after the data, and one with the real clock, long after the data (so ``latest``
falls back step by step). A range without ``from`` reads the student's history, one with it reads
by key. Both must give the same answers, and neither may leave a consumer on the bucket's stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client

from bridges.public.metrics_reader import MetricEntry, MetricsReader, UnknownMetric
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from tables.errors import ClosedError, ConfigError
from testkit.metrics import describe_builtins, put_many, put_results
from testkit.oracle import expected_results, format_window_time, generate_sessions
from testkit.streams import nats_client

pytestmark = pytest.mark.integration

T0 = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=11, students=12, minutes=8, start_epoch=T0))


def value(metric: str, student: str, start: int, *, game: str | None = None, final: bool = True) -> dict[str, Any]:
    key = {"student_id": student, **({"game_id": game} if game else {})}
    return {
        "metric": metric,
        "key": key,
        "window": {"start": format_window_time(start), "end": format_window_time(start + 60)},
        "final": final,
        "events": 1,
        "values": {},
    }


def decoded(entries: list[MetricEntry]) -> list[dict[str, Any]]:
    return [json.loads(entry.value) for entry in entries]


def oracle(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return sorted((key, v) for key, v in RESULTS.items() if key.startswith(prefix))


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


#: how each reader of the contract tests is made: its clock
READERS = {
    "clock-after-the-data": {"clock": lambda: T0 + 3 * 86_400},
    "real-clock": {},
}


@pytest.fixture(params=sorted(READERS))
async def reader(client: Client, request: pytest.FixtureRequest) -> AsyncIterator[MetricsReader]:
    await describe_builtins(client)
    async with MetricsReader(client, streams=PublicStreams(), **READERS[request.param]) as started:
        yield started
    # Whatever the reader did, it left no consumer behind on the bucket's stream.
    assert await consumers(client) == 0


@pytest.fixture
async def watcher(client: Client) -> AsyncIterator[MetricsReader]:
    """A reader for the watch tests: a watch is an ordered consumer, the queries' rule is not its."""
    await describe_builtins(client)
    async with MetricsReader(client, streams=PublicStreams()) as started:
        yield started


async def consumers(client: Client) -> int:
    return (await client.jetstream().stream_info("KV_metrics")).state.consumer_count


async def test_an_empty_bucket_has_no_windows(reader: MetricsReader) -> None:
    assert await reader.windows("progression", "s1") == []
    assert await reader.latest("progression", "s1") is None


@pytest.mark.parametrize("metric", ["progression", "engagement"])
async def test_a_students_windows_are_the_oracles_in_start_order(
    client: Client, reader: MetricsReader, metric: str
) -> None:
    await put_results(client, RESULTS)
    for student in ("s0000", "s0007"):
        expected = [v for _, v in sorted(oracle(f"{metric}.{student}."), key=lambda kv: int(kv[0].rsplit(".", 1)[1]))]
        entries = await reader.windows(metric, student)
        assert decoded(entries) == expected
        assert [e.window_start for e in entries] == sorted(e.window_start for e in entries)
        assert all((e.metric, e.student_id, e.game_id) == (metric, student, None) for e in entries)


async def test_outcomes_of_every_game_or_of_one(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {
        f"outcomes.s1.g-b.{T0}": value("outcomes", "s1", T0, game="g-b"),
        f"outcomes.s1.g-a.{T0}": value("outcomes", "s1", T0, game="g-a"),
        f"outcomes.s1.g-a.{T0 - 60}": value("outcomes", "s1", T0 - 60, game="g-a"),
        f"outcomes.s2.g-a.{T0}": value("outcomes", "s2", T0, game="g-a"),
    })
    every = await reader.windows("outcomes", "s1")
    assert [(e.window_start, e.game_id) for e in every] == [(T0 - 60, "g-a"), (T0, "g-a"), (T0, "g-b")]
    one = await reader.windows("outcomes", "s1", parts={"game_id": "g-b"})
    assert [(e.window_start, e.game_id) for e in one] == [(T0, "g-b")]


async def test_a_key_part_is_narrowed_by_its_field_only(reader: MetricsReader) -> None:
    with pytest.raises(ConfigError, match="student_id.*is not a key field of outcomes after the first"):
        await reader.windows("outcomes", "s1", parts={"student_id": "s2"})
    with pytest.raises(ConfigError, match="game_id.*is not a key field of engagement.*none"):
        await reader.latest("engagement", "s1", parts={"game_id": "g1"})
    with pytest.raises(ConfigError, match="game_id"):
        await reader.windows("outcomes", "s1", parts={"game_id": "g.*"})


async def test_a_metric_no_worker_described_is_unknown(client: Client) -> None:
    async with MetricsReader(client, streams=PublicStreams()) as reader:
        with pytest.raises(UnknownMetric, match="hints.*unknown metric; known: none yet"):
            await reader.windows("hints", "s1")
        await describe_builtins(client)
        # A metric described after the reader started is found on its first query.
        assert await reader.windows("engagement", "s1") == []
        with pytest.raises(UnknownMetric, match="known: engagement, outcomes, progression"):
            await reader.latest("hints", "s1")


async def test_a_student_id_that_prefixes_another_reads_only_its_own(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {
        f"engagement.s1.{T0}": value("engagement", "s1", T0),
        f"engagement.s10.{T0}": value("engagement", "s10", T0),
        f"engagement.s1-x.{T0}": value("engagement", "s1-x", T0),
    })
    assert [e.key for e in await reader.windows("engagement", "s1")] == [f"engagement.s1.{T0}"]


@pytest.mark.parametrize(
    ("start_from", "start_to", "starts"),
    [
        (None, None, [0, 60, 120, 180]),
        (60, None, [60, 120, 180]),
        (61, None, [120, 180]),
        (None, 120, [0, 60]),
        (None, 121, [0, 60, 120]),
        (60, 180, [60, 120]),
        (60, 60, []),
    ],
)
async def test_ranges_select_by_window_start_from_inclusive_to_exclusive(
    client: Client, reader: MetricsReader, start_from: int | None, start_to: int | None, starts: list[int]
) -> None:
    await put_results(client, {f"progression.s1.{T0 + s}": value("progression", "s1", T0 + s) for s in (120, 0, 180, 60)})
    entries = await reader.windows(
        "progression", "s1",
        start_from=None if start_from is None else T0 + start_from,
        start_to=None if start_to is None else T0 + start_to,
    )
    assert [e.window_start - T0 for e in entries] == starts


async def test_latest_is_the_largest_final_start_whatever_the_write_order(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {
        f"progression.s1.{T0 + 120}": value("progression", "s1", T0 + 120),
        f"progression.s1.{T0 + 180}": value("progression", "s1", T0 + 180, final=False),
        f"progression.s1.{T0}": value("progression", "s1", T0),  # written last, but older
    })
    latest = await reader.latest("progression", "s1")
    assert latest is not None and latest.window_start == T0 + 120


async def test_provisional_values_of_open_windows_only_when_asked(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {
        f"engagement.s1.{T0}": value("engagement", "s1", T0),
        f"engagement.s1.{T0 + 60}": value("engagement", "s1", T0 + 60, final=False),
        f"engagement.s1.{T0 + 120}": value("engagement", "s1", T0 + 120),
        f"engagement.s1.{T0 + 180}": value("engagement", "s1", T0 + 180, final=False),
    })
    assert [e.window_start - T0 for e in await reader.windows("engagement", "s1")] == [0, 120]
    every = await reader.windows("engagement", "s1", include_open=True, start_from=T0 + 60)
    assert [(e.window_start - T0, json.loads(e.value)["final"]) for e in every] == [(60, False), (120, True), (180, False)]


async def test_deleted_keys_and_keys_off_the_contract_are_left_out(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {
        f"engagement.s1.{T0}": value("engagement", "s1", T0),
        f"engagement.s1.{T0 + 60}": value("engagement", "s1", T0 + 60),
        "engagement.s1.later": value("engagement", "s1", T0),
    })
    kv = await client.jetstream().key_value("metrics")
    await kv.delete(f"engagement.s1.{T0 + 60}")
    assert [e.window_start for e in await reader.windows("engagement", "s1")] == [T0]
    assert (await reader.latest("engagement", "s1")).window_start == T0  # type: ignore[union-attr]


async def test_more_windows_than_one_pull_batch(client: Client, reader: MetricsReader) -> None:
    kv = await PublicStreams().ensure_metrics_bucket(client.jetstream())
    payloads = [json.dumps(value("engagement", "s1", T0 + 60 * n)).encode() for n in range(2500)]
    await asyncio.gather(*(kv.put(f"engagement.s1.{T0 + 60 * n}", p) for n, p in enumerate(payloads)))
    entries = await reader.windows("engagement", "s1")
    assert [e.window_start for e in entries] == [T0 + 60 * n for n in range(2500)]
    assert (await reader.latest("engagement", "s1")).window_start == T0 + 60 * 2499  # type: ignore[union-attr]


def utc(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp())  # type: ignore[misc]


#: A year of one student's 60 s windows up to T0, compressed: one every 3 hours all year, and every
#: minute on three days: across 2024-01-01 (a year boundary), on 2024-03-31 (when Europe's clocks
#: moved, at 01:00Z: nothing moves in UTC) and in the day before T0.
YEAR = sorted(
    {T0 - 366 * 86_400 + 3 * 3600 * n for n in range(366 * 8)}
    | {utc(2023, 12, 31, 12) + 60 * n for n in range(1440)}
    | {utc(2024, 3, 31) + 60 * n for n in range(1440)}
    | {T0 - 86_400 + 60 * n for n in range(1440)}
)


def history(student: str, starts: list[int]) -> list[tuple[str, bytes]]:
    return [(f"engagement.{student}.{start}", json.dumps(value("engagement", student, start)).encode()) for start in starts]


@pytest.fixture
async def year(client: Client) -> list[int]:
    """:data:`YEAR` in the bucket, next to a student whose id extends this one's."""
    await put_many(client, history("s1", YEAR) + history("s10", YEAR[-100:]))
    return YEAR


@pytest.mark.parametrize(
    ("start_from", "start_to"),
    [
        pytest.param(utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 10), id="aligned"),
        pytest.param(utc(2024, 3, 31, 1, 0, 30), utc(2024, 3, 31, 1, 10), id="from-inside-a-window"),
        pytest.param(utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 9, 1), id="to-inside-a-window"),
        pytest.param(utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1, 30), id="an-hour-across-the-dst-switch"),
        pytest.param(utc(2023, 12, 31, 23, 59), utc(2024, 1, 1, 0, 1), id="across-new-year"),
        pytest.param(utc(2023, 6, 1), utc(2023, 6, 1, 12), id="sparse-windows"),
        pytest.param(YEAR[0] - 3600, YEAR[0] + 1, id="first-window-of-the-history"),
        pytest.param(YEAR[-1], YEAR[-1] + 3600, id="last-window-of-the-history"),
        pytest.param(YEAR[-1] + 60, YEAR[-1] + 7 * 86_400, id="after-the-history"),
        pytest.param(utc(2022, 1, 1), utc(2022, 1, 2), id="before-the-history"),
    ],
)
async def test_a_narrow_range_of_a_long_history_is_exactly_its_windows(
    reader: MetricsReader, year: list[int], start_from: int, start_to: int
) -> None:
    entries = await reader.windows("engagement", "s1", start_from=start_from, start_to=start_to)
    assert [e.window_start for e in entries] == [s for s in year if start_from <= s < start_to]
    assert {e.student_id for e in entries} <= {"s1"}


async def test_a_window_straddling_from_is_left_out(reader: MetricsReader, year: list[int]) -> None:
    # Windows are selected by start: [01:00, 01:01) holds 01:00:30, but starts before it.
    entries = await reader.windows("engagement", "s1", start_from=utc(2024, 3, 31, 1, 0, 30), start_to=utc(2024, 3, 31, 1, 2))
    assert [e.window_start for e in entries] == [utc(2024, 3, 31, 1, 1)]


async def test_a_range_without_to_ends_now(reader: MetricsReader, year: list[int]) -> None:
    entries = await reader.windows("engagement", "s1", start_from=T0 - 600)
    assert [e.window_start for e in entries] == [s for s in year if s >= T0 - 600]


async def test_the_latest_of_a_long_history(reader: MetricsReader, year: list[int]) -> None:
    latest = await reader.latest("engagement", "s1")
    assert latest is not None and latest.window_start == year[-1]


async def test_outcomes_of_more_games_than_one_request_answers(reader: MetricsReader, client: Client) -> None:
    # 1,200 keys for two starts: more than the 1,024 subjects one batched direct get answers.
    games = [f"g{n:04d}" for n in range(600)]
    await put_many(client, [
        (f"outcomes.s1.{game}.{start}", json.dumps(value("outcomes", "s1", start, game=game)).encode())
        for start in (T0, T0 + 60) for game in games
    ])
    entries = await reader.windows("outcomes", "s1", start_from=T0, start_to=T0 + 120)
    assert [(e.window_start, e.game_id) for e in entries] == [(s, g) for s in (T0, T0 + 60) for g in games]
    latest = await reader.latest("outcomes", "s1")
    assert latest is not None and (latest.window_start, latest.game_id) == (T0 + 60, games[-1])


def recent_history(now: float) -> tuple[list[tuple[str, bytes]], int]:
    """Finals of the last hour before ``now``, a provisional value after them and a deleted final
    on top: what a live student's keys look like. Returns them and the latest final's start."""
    newest = int(now) // 60 * 60 - 120
    values = [
        (f"engagement.s1.{start}", json.dumps(value("engagement", "s1", start)).encode())
        for start in range(newest - 3600, newest + 60, 60)
    ]
    values.append((f"engagement.s1.{newest + 60}", json.dumps(value("engagement", "s1", newest + 60, final=False)).encode()))
    return values, newest


@pytest.mark.parametrize(
    ("data", "clock_ahead"),
    [
        # 1. a final among the newest windows the clock allows
        pytest.param("recent", 0, id="recent-windows"),
        # 2. nothing final in the last hour by the clock: read back from the student's last write
        pytest.param("recent", 30 * 86_400, id="back-from-the-last-write"),
        # 3. finals written long after their windows (imported, here): the history
        pytest.param("year", 0, id="from-the-history"),
    ],
)
async def test_the_latest_window_in_each_step(client: Client, data: str, clock_ahead: float) -> None:
    if data == "year":
        await put_many(client, history("s1", YEAR))
        expected = YEAR[-1]
    else:
        values, expected = recent_history(time.time())
        await put_many(client, values)
        kv = await client.jetstream().key_value("metrics")
        await kv.put(f"engagement.s1.{expected + 120}", json.dumps(value("engagement", "s1", expected + 120)).encode())
        await kv.delete(f"engagement.s1.{expected + 120}")  # deleted: never the answer
    async with MetricsReader(
        client, streams=PublicStreams(), clock=lambda: time.time() + clock_ahead
    ) as reader:
        latest = await reader.latest("engagement", "s1")
        assert latest is not None and latest.window_start == expected
        assert await reader.latest("engagement", "s-unknown") is None
        assert await reader.latest("progression", "s1") is None
    assert await consumers(client) == 0


async def test_many_queries_create_no_consumer(reader: MetricsReader, client: Client, year: list[int]) -> None:
    before = await consumers(client)
    for n in range(20):
        start = year[-1] - 60 * n
        await reader.windows("engagement", "s1", start_from=start - 3600, start_to=start)
        await reader.windows("outcomes", f"s-{n}", start_from=start - 3600)
        await reader.latest("outcomes", f"s-{n}")
    for _ in range(3):  # without from: the history; the latest, for the real clock (see test_the_latest_window_in_each_step)
        await reader.windows("engagement", "s1")
        await reader.latest("engagement", "s1")
    assert await consumers(client) == before == 0


async def next_keys(entries: AsyncIterator[MetricEntry], count: int) -> list[str]:
    return [(await asyncio.wait_for(anext(entries), 10)).key for _ in range(count)]


async def test_a_watch_starts_with_the_current_values_when_asked(client: Client, watcher: MetricsReader) -> None:
    await put_results(client, {f"engagement.s1.{T0}": value("engagement", "s1", T0)})
    async with watcher.watch("engagement", "s1", include_existing=True) as entries:
        assert await next_keys(entries, 1) == [f"engagement.s1.{T0}"]
        await put_results(client, {
            f"engagement.s2.{T0}": value("engagement", "s2", T0),  # another student: not seen
            f"progression.s1.{T0}": value("progression", "s1", T0),  # another metric: not seen
            f"engagement.s1.{T0 + 60}": value("engagement", "s1", T0 + 60),
        })
        assert await next_keys(entries, 1) == [f"engagement.s1.{T0 + 60}"]


async def test_a_watch_of_one_students_new_values_across_metrics(client: Client, watcher: MetricsReader) -> None:
    await put_results(client, {f"engagement.s1.{T0}": value("engagement", "s1", T0)})
    async with watcher.watch(student_id="s1") as entries:
        await put_results(client, {
            f"outcomes.s2.g1.{T0}": value("outcomes", "s2", T0, game="g1"),
            f"outcomes.s1.g1.{T0}": value("outcomes", "s1", T0, game="g1"),
            f"progression.s1.{T0}": value("progression", "s1", T0),
        })
        assert await next_keys(entries, 2) == [f"outcomes.s1.g1.{T0}", f"progression.s1.{T0}"]


async def test_a_watch_of_a_metric_that_starts_later(client: Client) -> None:
    async with MetricsReader(client, streams=PublicStreams()) as reader:
        async with reader.watch("hints", "s1") as entries:
            kv = await client.jetstream().key_value("metrics")
            await kv.put(f"hints.s2.{T0}", json.dumps(value("hints", "s2", T0)).encode())  # another student
            await kv.put(f"hints.s1.{T0}", json.dumps(value("hints", "s1", T0)).encode())
            assert await next_keys(entries, 1) == [f"hints.s1.{T0}"]
        # Narrowing a later key part needs the metric's key fields: its description.
        with pytest.raises(UnknownMetric, match="hints"):
            async with reader.watch("hints", "s1", parts={"game_id": "g1"}):
                pass
        with pytest.raises(ConfigError, match="'metric'"):
            async with reader.watch("hi.nts"):
                pass


async def test_a_watch_ends_when_its_block_is_left(client: Client, watcher: MetricsReader) -> None:
    async with watcher.watch("engagement") as entries:
        pass
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(entries), 5)


async def test_a_closed_reader_refuses_queries(client: Client) -> None:
    reader = await MetricsReader(client, streams=PublicStreams()).start()
    await reader.close()
    await reader.close()
    with pytest.raises(ClosedError):
        await reader.windows("engagement", "s1")
    with pytest.raises(ClosedError):
        await MetricsReader(client, streams=PublicStreams()).windows("engagement", "s1")
