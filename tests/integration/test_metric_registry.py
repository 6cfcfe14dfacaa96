"""A metric written in one file, outside the repository, is served everywhere with no other edit.

The tutorial's ``hints`` module (docs/tutorial.md, taken from the page itself) is written to a
temporary directory and run as ``python -m app worker <path>``, next to a ``python -m app web``
process started before it. Events go in over HTTP ingest; then the metric is listed by
``GET /v1/metrics`` with its description, its finals are answered by the query API, and the
Python results client's ``subscribe()`` and ``watch()`` (opened before the worker started) yield
them: no module of the project names ``hints``, and no process is restarted.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.public.results_client import ResultsClient
from bridges.server import NatsServer
from contract.results import MetricResult, Result, parse_result
from testkit.pipeline import metric_env, start_metric_worker
from testkit.streams import nats_client
from testkit.workers import REPO, WorkerProcess, Workers, poll_until

pytestmark = pytest.mark.integration

READ_TOKEN = "read-tok"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WINDOW = 5


def tutorial_module() -> str:
    """The module docs/tutorial.md shows (the block starting ``# file: hints.py``)."""
    found = re.findall(r"```python\n(# file: hints\.py\n.*?)```", (REPO / "docs" / "tutorial.md").read_text(), re.S)
    assert len(found) == 1, "the tutorial shows the hints module once"
    return str(found[0])


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer) -> Iterator[Workers]:
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=1, partitions=2)
    with Workers(tmp_path / "logs", {**env, "READ_TOKEN": READ_TOKEN}) as pool:
        yield pool


async def start_web(workers: Workers) -> tuple[WorkerProcess, str]:
    web = workers.spawn([sys.executable, "-m", "app", "web"], name="web")
    await web.wait_for_log(r"web listening on http://\S+", timeout=60)
    match = re.search(r"web listening on (http://\S+)", web.log())
    assert match is not None
    return web, match.group(1)


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params, headers=READ) as response:
        return response.status, await response.json()


def hint(n: int, student: str, activity: str, at: float) -> dict[str, Any]:
    return {"event_id": f"h-{n}", "student_id": student, "type": "interaction", "name": "hint",
            "activity_id": activity, "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "data": {}, "client_version": "2.1"}  # a field this server does not know: ignored


async def take(results: AsyncIterator[Result[Any]], count: int) -> list[Result[Any]]:
    return [await asyncio.wait_for(anext(results), 30) for _ in range(count)]


async def test_a_metric_file_outside_the_repository_is_served_everywhere(
    tmp_path: Path, nats_server: NatsServer, workers: Workers
) -> None:
    module = tmp_path / "metrics" / "hints.py"
    module.parent.mkdir()
    module.write_text(tutorial_module())
    assert not module.is_relative_to(REPO)
    web, base = await start_web(workers)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        # Before its worker: not a metric anyone knows.
        assert await get(http, f"{base}/v1/metrics") == (200, {"metrics": []})
        status, body = await get(http, f"{base}/v1/metrics/hints/s1/latest")
        assert (status, body["errors"][0]["field"]) == (404, "metric")
        # A service that follows hints before any worker runs it.
        client = ResultsClient(await stack.enter_async_context(nats_client(nats_server.url)), parse_result)
        subscribed = await stack.enter_async_context(client.subscribe(metric="hints"))
        watched = await stack.enter_async_context(client.watch(metric="hints", student_id="s1"))

        worker = start_metric_worker(workers, str(module), name="hints")
        await worker.wait_ready(timeout=90)

        async def listed() -> tuple[int, Any] | None:
            # The web process reads the listing again once its copy is older than a few seconds.
            status, body = await get(http, f"{base}/v1/metrics")
            return (status, body) if status != 200 or body["metrics"] else None

        status, body = await poll_until(listed, timeout=15, interval=0.25, what="hints in GET /v1/metrics")
        assert status == 200
        (listed_hints,) = body["metrics"]
        versions = listed_hints.pop("versions")
        assert listed_hints == {
            "name": "hints", "version": 1, "key_fields": ["student_id"],
            "window": {"kind": "tumbling", "size_seconds": WINDOW, "step_seconds": WINDOW, "gap_seconds": None},
            "grace_seconds": 1, "values": {"hints": "integer", "activities": "integer"},
        }
        # Its only version, which started with no event stored: nothing to go through.
        assert [(v["version"], v["series"], v["complete"], v["remaining"]) for v in versions] == [(1, "hints", True, 0)]

        start = int(time.time()) // WINDOW * WINDOW  # the window open now; it closes about a second after it ends
        events = [hint(0, "s1", "fractions", start), hint(1, "s1", "fractions", start + 0.5),
                  hint(2, "s1", "decimals", start + 1), hint(3, "s2", "fractions", start)]
        async with http.post(f"{base}/v1/events", json={"events": events}) as response:
            assert response.status == 202, await response.text()

        async def latest() -> Any:
            status, body = await get(http, f"{base}/v1/metrics/hints/s1/latest")
            return body if status == 200 else None

        final = await poll_until(latest, timeout=30, what="hints of s1 to be final")
        window = {"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                  "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + WINDOW))}
        assert final == {"metric": "hints", "key": {"student_id": "s1"}, "window": window, "final": True,
                         "events": 3, "values": {"hints": 3, "activities": 2}}
        assert await get(http, f"{base}/v1/metrics/hints/s1") == (200, {"windows": [final]})
        ranged = {"from": window["start"], "to": window["end"]}
        assert await get(http, f"{base}/v1/metrics/hints/s1", **ranged) == (200, {"windows": [final]})
        assert await get(http, f"{base}/v1/metrics/hints/s1", **{"from": window["end"]}) == (200, {"windows": []})
        # hints is keyed by the student alone: a game is no parameter of it.
        status, body = await get(http, f"{base}/v1/metrics/hints/s1", game_id="g1")
        assert (status, body["errors"]) == (
            422, [{"index": -1, "field": "game_id", "message": "not allowed; parameters: from, to, include_open, version"}],
        )
        async with http.get(f"{base}/v1/metrics/hints/s1/latest") as response:
            assert response.status == 401  # read like any metric: behind the read token

        # The results client: both students' finals on the result subjects, s1's in KV.
        by_student = {r.student_id: r for r in await take(subscribed, 2)}
        (watched_final,) = await take(watched, 1)
        for result in (by_student["s1"], watched_final):
            assert type(result) is MetricResult
            assert json.loads(result.to_json_bytes()) == final
            assert result.values["hints"] == 3 and result.kv_key == f"hints.s1.{start}"
        assert by_student["s2"].values == {"hints": 1, "activities": 1}
    assert await worker.terminate() == 0
    assert await web.terminate() == 0
