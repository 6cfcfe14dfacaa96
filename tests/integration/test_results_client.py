"""The adaptive-learning client: result subjects and KV watches, typed by contract.results."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from nats.aio.client import Client

from bridges.connection import ConnectionSettings
from bridges.public.results_client import ResultsClient
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from contract.results import EngagementResult, InvalidResult, OutcomesResult, ProgressionResult, parse_result
from tables.errors import ConfigError
from testkit.metrics import publish_results, put_results
from testkit.oracle import expected_results, generate_sessions
from testkit.streams import nats_client

pytestmark = pytest.mark.integration

T0 = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=21, students=4, minutes=5, start_epoch=T0))
T = TypeVar("T")

Result = ProgressionResult | EngagementResult | OutcomesResult


def of_student(student: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in RESULTS.items() if value["key"]["student_id"] == student}


async def take(results: AsyncIterator[T], count: int) -> list[T]:
    return [await asyncio.wait_for(anext(results), 10) for _ in range(count)]


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


@pytest.fixture
def results_client(client: Client) -> ResultsClient[Result]:
    return ResultsClient(client, parse_result)


async def test_replaying_one_students_results_from_a_start_time(
    client: Client, results_client: ResultsClient[Result]
) -> None:
    await publish_results(client, RESULTS)
    mine = of_student("s0002")
    since = datetime.now(UTC) - timedelta(minutes=5)
    async with results_client.subscribe(student_id="s0002", since=since) as results:
        got = await take(results, len(mine))
    assert [json.loads(r.to_json_bytes()) for r in got] == list(mine.values())
    assert all(isinstance(r, ProgressionResult | EngagementResult | OutcomesResult) for r in got)


async def test_a_start_time_after_the_results_skips_them(
    client: Client, results_client: ResultsClient[Result]
) -> None:
    old = dict(list(RESULTS.items())[:10])
    await publish_results(client, old)
    since = datetime.now(UTC)  # the stream stamps messages with this machine's clock
    async with results_client.subscribe(since=since) as results:
        new = dict(list(RESULTS.items())[10:12])
        await publish_results(client, new)
        got = await take(results, 2)
    assert [r.kv_key for r in got] == list(new)


async def test_new_results_of_everyone_once_subscribed(client: Client, results_client: ResultsClient[Result]) -> None:
    await publish_results(client, dict(list(RESULTS.items())[:5]))  # before: not seen
    async with results_client.subscribe() as results:
        rest = dict(list(RESULTS.items())[5:])
        await publish_results(client, rest)
        got = await take(results, len(rest))
    assert [r.kv_key for r in got] == list(rest)


async def test_subscribing_to_one_metric(client: Client, results_client: ResultsClient[Result]) -> None:
    async with results_client.subscribe(metric="outcomes") as results:
        await publish_results(client, RESULTS)
        outcomes = [key for key, value in RESULTS.items() if value["metric"] == "outcomes"]
        got = await take(results, len(outcomes))
    assert all(isinstance(r, OutcomesResult) for r in got)
    assert [r.kv_key for r in got] == outcomes


async def test_a_value_that_is_not_a_result_is_skipped_or_raised_when_strict(client: Client) -> None:
    await PublicStreams().ensure_results(client.jetstream())
    since = datetime.now(UTC) - timedelta(minutes=1)
    good = next(iter(of_student("s0001").values()))
    js = client.jetstream()
    await js.publish("results.engagement.s0001", b'{"metric": "engagement"}')
    await js.publish(f"results.{good['metric']}.s0001", json.dumps(good).encode())
    async with ResultsClient(client, parse_result).subscribe(student_id="s0001", since=since) as results:
        (first,) = await take(results, 1)
    assert json.loads(first.to_json_bytes()) == good
    async with ResultsClient(client, parse_result, strict=True).subscribe(student_id="s0001", since=since) as results:
        with pytest.raises(InvalidResult):
            await take(results, 1)


async def test_watching_the_kv_keys_shows_the_current_values_then_new_ones(
    client: Client, results_client: ResultsClient[Result]
) -> None:
    mine = of_student("s0003")
    engagement = {key: value for key, value in mine.items() if value["metric"] == "engagement"}
    first, *rest = engagement.items()
    await put_results(client, dict([first]))
    async with results_client.watch(metric="engagement", student_id="s0003") as results:
        (current,) = await take(results, 1)
        assert current.kv_key == first[0]
        await put_results(client, dict(rest))
        got = await take(results, len(rest))
    assert [r.kv_key for r in got] == [key for key, _ in rest]
    assert all(isinstance(r, EngagementResult) for r in got)


async def test_connecting_by_settings(nats_server: NatsServer) -> None:
    settings = ConnectionSettings.from_urls(nats_server.url)
    async with ResultsClient.connect(settings, parse_result) as results_client:
        async with results_client.subscribe(student_id="s0000") as results:
            async with nats_client(nats_server.url) as client:
                await publish_results(client, of_student("s0000"))
            got = await take(results, len(of_student("s0000")))
    assert {r.student_id for r in got} == {"s0000"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"student_id": "s.1"}, "student_id"),
        ({"student_id": "*"}, "student_id"),
        ({"metric": "mastery"}, "metric"),
        ({"since": datetime(2024, 5, 1)}, "since"),
    ],
)
async def test_bad_arguments_are_refused_before_subscribing(
    results_client: ResultsClient[Result], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        async with results_client.subscribe(**kwargs):
            pass
