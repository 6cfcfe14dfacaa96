"""The metrics KV reader: ranges by window start, the latest final window, and watches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client

from bridges.public.metrics_reader import MetricEntry, MetricsReader
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from tables.errors import ClosedError
from testkit.metrics import put_results
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


@pytest.fixture
async def reader(client: Client) -> AsyncIterator[MetricsReader]:
    async with MetricsReader(client, streams=PublicStreams()) as started:
        yield started


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
    one = await reader.windows("outcomes", "s1", game_id="g-b")
    assert [(e.window_start, e.game_id) for e in one] == [(T0, "g-b")]


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


async def next_keys(entries: AsyncIterator[MetricEntry], count: int) -> list[str]:
    return [(await asyncio.wait_for(anext(entries), 10)).key for _ in range(count)]


async def test_a_watch_starts_with_the_current_values_when_asked(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {f"engagement.s1.{T0}": value("engagement", "s1", T0)})
    async with reader.watch("engagement", "s1", include_existing=True) as entries:
        assert await next_keys(entries, 1) == [f"engagement.s1.{T0}"]
        await put_results(client, {
            f"engagement.s2.{T0}": value("engagement", "s2", T0),  # another student: not seen
            f"progression.s1.{T0}": value("progression", "s1", T0),  # another metric: not seen
            f"engagement.s1.{T0 + 60}": value("engagement", "s1", T0 + 60),
        })
        assert await next_keys(entries, 1) == [f"engagement.s1.{T0 + 60}"]


async def test_a_watch_of_one_students_new_values_across_metrics(client: Client, reader: MetricsReader) -> None:
    await put_results(client, {f"engagement.s1.{T0}": value("engagement", "s1", T0)})
    async with reader.watch(student_id="s1") as entries:
        await put_results(client, {
            f"outcomes.s2.g1.{T0}": value("outcomes", "s2", T0, game="g1"),
            f"outcomes.s1.g1.{T0}": value("outcomes", "s1", T0, game="g1"),
            f"progression.s1.{T0}": value("progression", "s1", T0),
        })
        assert await next_keys(entries, 2) == [f"outcomes.s1.g1.{T0}", f"progression.s1.{T0}"]


async def test_a_watch_ends_when_its_block_is_left(client: Client, reader: MetricsReader) -> None:
    async with reader.watch("engagement") as entries:
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
