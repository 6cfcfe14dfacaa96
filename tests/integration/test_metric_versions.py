"""A metric fixed and redeployed as version 2 recomputes its finals from the retained events,
while version 1 keeps serving until version 2 is complete; then version 1 is retired.

Version 1 of ``hintcount`` has a bug: it counts every interaction, not only hints. Its worker
runs, next to a web process, and computes finals for a first batch of events, among them retries
of a third of them (stored again, counted once). Version 2 (the fix, ``version=2``) is started
from another file beside it, as a second deployment would be: it is a consumer group of its own,
so it reads the events topic from the start of its retention. Its aggregation is deliberately slow
(a few milliseconds per event), so the test sees the backfill under way: while the registry says
version 2 is incomplete, readers that name no version get version 1; its worker is killed
(SIGKILL) in the middle and started again, and goes on. Once version 2 is complete,
readers get it by default; events arriving then count in both versions, and version 2's finals
equal an oracle over every event, each counted once. Retiring version 1 is refused while its
worker runs and while it would leave no complete version; after its worker stops, it removes its
keys, results, offsets and changelog.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents.windowed.state_table import changelog_topic
from bridges.naming import Naming
from bridges.public.results_client import ResultsClient
from bridges.server import NatsServer
from bridges.transport.topics import TopicRegistry
from contract.results import MetricResult, parse_result
from testkit.pipeline import metric_env, start_metric_worker
from testkit.streams import nats_client
from testkit.workers import REPO, WorkerProcess, Workers, poll_until

pytestmark = pytest.mark.integration

READ_TOKEN = "read-tok"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WINDOW = 2
METRIC = "hintcount"
STUDENTS = ("s1", "s2", "s3")

MODULE = '''
import time

from agents.windowed import windowed_metric
from tables import Aggregates, Count, MetricDefinition, Tumbling


def counted(event):
    {delay}
    return {condition}


def define(window_seconds, grace_seconds):
    return MetricDefinition(
        name="hintcount",
        version={version},
        key_fields=("student_id",),
        time_field="occurred_at",
        window=Tumbling(window_seconds),
        grace=grace_seconds,
        where=counted,
        aggregates=Aggregates({{"hints": Count()}}),
    )


build = windowed_metric(define)
'''
#: version 1's bug: every interaction counts as a hint
BUGGY = MODULE.format(version=1, delay="pass", condition='event["type"] == "interaction"')
#: version 2: hints only, and slow enough that the backfill takes a few seconds
FIXED = MODULE.format(
    version=2, delay="time.sleep(0.02)",
    condition='event["type"] == "interaction" and event["name"] == "hint"',
)


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer) -> Iterator[Workers]:
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=1, partitions=2)
    with Workers(tmp_path / "logs", {**env, "READ_TOKEN": READ_TOKEN}) as pool:
        yield pool


def module_file(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True)
    path = directory / f"{METRIC}.py"
    path.write_text(source)
    return path


async def start_web(workers: Workers) -> str:
    web = workers.spawn([sys.executable, "-m", "app", "web"], name="web")
    await web.wait_for_log(r"web listening on http://\S+", timeout=60)
    return web.log().split("web listening on ", 1)[1].split()[0]


def event(n: int, student: str, name: str) -> dict[str, Any]:
    return {"event_id": f"e-{n}", "student_id": student, "type": "interaction", "name": name,
            "activity_id": "fractions", "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {}}


async def send(http: aiohttp.ClientSession, base: str, events: list[dict[str, Any]]) -> None:
    for at in range(0, len(events), 20):  # small records: a slow metric blocks its loop per record
        async with http.post(f"{base}/v1/events", json={"events": events[at : at + 20]}) as response:
            assert response.status == 202, await response.text()


def batch(first: int, count: int) -> list[dict[str, Any]]:
    return [event(n, STUDENTS[n % 3], "hint" if n % 4 else "answer") for n in range(first, first + count)]


def oracle(events: list[dict[str, Any]], *, hints_only: bool) -> dict[str, int]:
    """Per student: what a correct count of all its windows adds up to."""
    return dict(Counter(e["student_id"] for e in events if not hints_only or e["name"] == "hint"))


async def totals(http: aiohttp.ClientSession, base: str, version: int | None) -> dict[str, int]:
    """Per student: the sum of its final windows' counts (in ``version``, or the default one)."""
    found: dict[str, int] = {}
    for student in STUDENTS:
        params = {} if version is None else {"version": str(version)}
        async with http.get(f"{base}/v1/metrics/{METRIC}/{student}", params=params, headers=READ) as response:
            assert response.status == 200, await response.text()
            windows = (await response.json())["windows"]
        assert all(w.get("version", 1) == (version or w.get("version", 1)) for w in windows)
        found[student] = sum(w["values"]["hints"] for w in windows)
    return found


async def listing(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/metrics", headers=READ) as response:
        assert response.status == 200
        (metric,) = (await response.json())["metrics"]
        return dict(metric)


def retire(workers: Workers, version: int) -> subprocess.CompletedProcess[str]:
    env = dict(workers.env)
    return subprocess.run(
        [sys.executable, "-m", "app", "retire", METRIC, "--version", str(version)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


async def test_a_fixed_metric_recomputes_beside_the_old_version_and_replaces_it(
    tmp_path: Path, nats_server: NatsServer, workers: Workers
) -> None:
    base = await start_web(workers)
    v1 = start_metric_worker(workers, str(module_file(tmp_path / "v1", BUGGY)), name="v1")
    await v1.wait_ready(timeout=90)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        first = batch(0, 150)
        # Retries of a third of them, stored again: each counts once, in both versions.
        await send(http, base, first + first[::3])
        buggy = oracle(first, hints_only=False)
        await poll_until(lambda: _equal(totals(http, base, None), buggy), timeout=60, what="version 1's finals")

        # The fix, deployed beside version 1.
        fixed_module = str(module_file(tmp_path / "v2", FIXED))
        v2: WorkerProcess = start_metric_worker(workers, fixed_module, name="v2")
        seen_backfilling = 0
        started_at: str | None = None

        async def complete() -> bool:
            nonlocal seen_backfilling, started_at, v2
            metric = await listing(http, base)
            versions = {v["version"]: v for v in metric["versions"]}
            if 2 not in versions or not versions[2]["complete"]:
                # Until version 2 is complete, readers naming no version get version 1.
                assert metric["version"] == 1
                assert await totals(http, base, None) == buggy
                if 2 in versions:
                    seen_backfilling += 1
                    if started_at is None:
                        # Killed in the middle of its backfill: its replacement goes on from the
                        # last commit, towards the targets the first worker set.
                        started_at = versions[2]["started_at"]
                        await v2.kill()
                        v2 = start_metric_worker(workers, fixed_module, name="v2-again")
                    assert versions[2]["started_at"] == started_at
                return False
            assert metric["version"] == 2 and versions[1]["complete"]
            assert versions[2]["remaining"] == 0 and versions[2]["series"] == f"{METRIC}_v2"
            assert versions[2]["started_at"] == started_at
            return True

        await poll_until(complete, timeout=120, interval=0.3, what="version 2 to be complete")
        assert seen_backfilling, "the backfill was never seen under way: the test could not see version 1 serving"

        # Events arriving now count in both versions.
        second = batch(150, 60)
        await send(http, base, second)
        everything = first + second
        fixed = oracle(everything, hints_only=True)
        await poll_until(lambda: _equal(totals(http, base, None), fixed), timeout=60, what="version 2's finals")
        assert await totals(http, base, 2) == fixed
        await poll_until(
            lambda: _equal(totals(http, base, 1), oracle(everything, hints_only=False)), timeout=60,
            what="version 1's finals of the later events",
        )

        # The results client reads the version it is asked for, or the default one.
        client = ResultsClient(await stack.enter_async_context(nats_client(nats_server.url)), parse_result)
        async with client.watch(metric=METRIC, student_id="s1") as watched:
            result = await asyncio.wait_for(anext(watched), 30)
        assert isinstance(result, MetricResult) and result.version == 2
        assert result.kv_key.startswith(f"{METRIC}_v2.s1.") and result.subject == f"results.{METRIC}_v2.s1"

        # Retiring: refused while version 1's worker runs, and for the only complete version.
        refused = retire(workers, 1)
        assert refused.returncode == 1 and "live member" in refused.stderr, refused.stderr
        assert await v1.terminate() == 0
        retired = await poll_until(lambda: _retired(workers), timeout=30, what="version 1 to be retired")
        assert changelog_topic(METRIC, METRIC) in retired.stdout, retired.stdout
        only = retire(workers, 2)
        assert only.returncode == 2 and "only complete version" in only.stderr, only.stderr

        metric = await listing(http, base)
        assert [v["version"] for v in metric["versions"]] == [2]
        async with http.get(f"{base}/v1/metrics/{METRIC}/s1", params={"version": "1"}, headers=READ) as response:
            assert response.status == 404 and (await response.json())["errors"][0]["field"] == "version"
        assert await totals(http, base, None) == fixed
        nats = await stack.enter_async_context(nats_client(nats_server.url))
        js = nats.jetstream()
        assert await _subjects(js, "KV_metrics", f"$KV.metrics.{METRIC}.>") == 0
        assert await _subjects(js, "KV_metrics", f"$KV.metrics.{METRIC}_v2.>") > 0
        assert await _subjects(js, "FAUST_RESULTS", f"results.{METRIC}.>") == 0
        assert await _subjects(js, "FAUST_RESULTS", f"results.{METRIC}_v2.>") > 0
        assert await _subjects(js, "KV_faust_offsets", f"$KV.faust_offsets.{METRIC}.>") == 0
        topics = TopicRegistry(js, Naming("faust"))
        await topics.start()
        assert await topics.lookup(changelog_topic(METRIC, METRIC)) is None
        assert await topics.lookup(changelog_topic(f"{METRIC}_v2", METRIC)) is not None
    assert await v2.terminate() == 0


async def _equal(found: Any, expected: dict[str, int]) -> bool:
    return await found == expected


async def _retired(workers: Workers) -> subprocess.CompletedProcess[str] | None:
    # A stopped worker's membership ends when it leaves its group (or within its lease).
    done = retire(workers, 1)
    if done.returncode == 1 and "live member" in done.stderr:
        return None
    assert done.returncode == 0, done.stderr
    return done


async def _subjects(js: Any, stream: str, subjects: str) -> int:
    info = await js.stream_info(stream, subjects_filter=subjects)
    return len(info.state.subjects or {})
