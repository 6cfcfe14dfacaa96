"""The adaptive-learning client: result subjects and KV watches, typed by contract.results (the
built-in metrics refined by contract.typed, any other metric generic)."""

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
from contract.results import InvalidResult, MetricResult, Result, parse_result
from contract.typed.engagement import EngagementResult
from contract.typed.outcomes import OutcomesResult
from contract.typed.progression import ProgressionResult
from tables.errors import ConfigError
from testkit.metrics import publish_results, put_results
from testkit.oracle import expected_results, generate_sessions
from testkit.streams import nats_client

pytestmark = pytest.mark.integration

T0 = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=21, students=4, minutes=5, start_epoch=T0))
T = TypeVar("T")


def of_student(student: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in RESULTS.items() if value["key"]["student_id"] == student}


async def take(results: AsyncIterator[T], count: int) -> list[T]:
    return [await asyncio.wait_for(anext(results), 10) for _ in range(count)]


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    async with nats_client(nats_server.url) as connection:
        yield connection


@pytest.fixture
def results_client(client: Client) -> ResultsClient[Result[Any]]:
    return ResultsClient(client, parse_result)


async def test_replaying_one_students_results_from_a_start_time(
    client: Client, results_client: ResultsClient[Result[Any]]
) -> None:
    await publish_results(client, RESULTS)
    mine = of_student("s0002")
    since = datetime.now(UTC) - timedelta(minutes=5)
    async with results_client.subscribe(student_id="s0002", since=since) as results:
        got = await take(results, len(mine))
    assert [json.loads(r.to_json_bytes()) for r in got] == list(mine.values())
    assert all(isinstance(r, ProgressionResult | EngagementResult | OutcomesResult) for r in got)


async def test_a_start_time_after_the_results_skips_them(
    client: Client, results_client: ResultsClient[Result[Any]]
) -> None:
    old = dict(list(RESULTS.items())[:10])
    await publish_results(client, old)
    since = datetime.now(UTC)  # the stream stamps messages with this machine's clock
    async with results_client.subscribe(since=since) as results:
        new = dict(list(RESULTS.items())[10:12])
        await publish_results(client, new)
        got = await take(results, 2)
    assert [r.kv_key for r in got] == list(new)


async def test_new_results_of_everyone_once_subscribed(client: Client, results_client: ResultsClient[Result[Any]]) -> None:
    await publish_results(client, dict(list(RESULTS.items())[:5]))  # before: not seen
    async with results_client.subscribe() as results:
        rest = dict(list(RESULTS.items())[5:])
        await publish_results(client, rest)
        got = await take(results, len(rest))
    assert [r.kv_key for r in got] == list(rest)


async def test_subscribing_to_one_metric(client: Client, results_client: ResultsClient[Result[Any]]) -> None:
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
    client: Client, results_client: ResultsClient[Result[Any]]
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
        ({"metric": "mast.ery"}, "metric"),
        ({"metric": "*"}, "metric"),
        ({"since": datetime(2024, 5, 1)}, "since"),
    ],
)
async def test_bad_arguments_are_refused_before_subscribing(
    results_client: ResultsClient[Result[Any]], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        async with results_client.subscribe(**kwargs):
            pass


def hints(student: str, start: int, **values: Any) -> dict[str, Any]:
    """A result of a metric the project does not ship (its worker would load it from a file)."""
    window = {"start": datetime.fromtimestamp(start, UTC).isoformat(), "end": datetime.fromtimestamp(start + 60, UTC).isoformat()}
    return {"metric": "hints", "key": {"student_id": student}, "window": window, "final": True, "events": 2, "values": values}


async def test_a_metric_without_a_refinement_is_read_generically(
    client: Client, results_client: ResultsClient[Result[Any]]
) -> None:
    # Subscribing needs no worker yet: the results of a metric that starts later are seen.
    async with results_client.subscribe(metric="hints") as results:
        await publish_results(client, {f"hints.s1.{T0}": hints("s1", T0, hints=2, activities=1)})
        (got,) = await take(results, 1)
    assert isinstance(got, MetricResult)
    assert (got.metric, got.student_id, got.values) == ("hints", "s1", {"hints": 2, "activities": 1})
    assert got.kv_key == f"hints.s1.{T0}"


async def test_a_value_or_field_a_newer_worker_adds_is_kept_or_ignored(
    client: Client, results_client: ResultsClient[Result[Any]]
) -> None:
    engagement = next(v for v in RESULTS.values() if v["metric"] == "engagement")
    newer = {**engagement, "values": {**engagement["values"], "streak": 4}, "region": "eu"}
    async with results_client.subscribe(metric="engagement") as results:
        await publish_results(client, {"k": newer})
        (got,) = await take(results, 1)
    assert isinstance(got, EngagementResult)
    assert got.values.model_extra == {"streak": 4}
    # A value of another type than the refinement knows: still a result, generic, never skipped.
    retyped = {**engagement, "values": {**engagement["values"], "sessions": "many"}}
    async with results_client.subscribe(metric="engagement") as results:
        await publish_results(client, {"k": retyped})
        (got,) = await take(results, 1)
    assert type(got) is MetricResult and got.values["sessions"] == "many"
