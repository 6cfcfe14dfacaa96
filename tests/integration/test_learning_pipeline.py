"""Issue 5 end to end: both ingest paths, the three metric workers, the web process, the oracle.

Generated student sessions, replayed live (each event sent when it occurs, twelve times faster
than generated), go in half over HTTP and half over the NATS ingest subjects, with duplicates
across both paths, invalid events on both, and a late event once its window has closed. Then every KV value, every result message and every dead letter is checked against what
the oracle computes from the same events, and the query API serves the same windows.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.live import pace, relive
from testkit.oracle import expected_results, generate_sessions
from testkit.pipeline import METRIC_AGENTS, metric_env, metrics_values, start_metric_worker, values_match
from testkit.streams import nats_client, read_stream
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

WINDOW, GRACE, PARTITIONS = 5, 10, 4
BATCH = 8  # well under a second of traffic


@pytest.fixture
def workers(tmp_path: Path, nats_server: NatsServer):
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE, partitions=PARTITIONS)
    with Workers(tmp_path / "logs", env) as pool:
        yield pool


async def nats_publish(url: str, events: list[dict]) -> None:
    """Core NATS publishes to events.<type>.<student_id>, as any NATS client would."""
    async with nats_client(url) as client:
        for event in events:
            await client.publish(f"events.{event['type']}.{event['student_id']}", json.dumps(event).encode())
        await client.flush()


def moment(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + "Z"


async def test_both_ingest_paths_to_kv_results_dead_letters_and_query_api(
    nats_server: NatsServer, workers: Workers
) -> None:
    for agent in METRIC_AGENTS:
        start_metric_worker(workers, agent)
    web = workers.spawn([sys.executable, "-m", "app", "web"], name="web")
    for worker in workers:
        if worker is not web:
            await worker.wait_ready(timeout=60)
    await web.wait_for_log(r"web listening on", timeout=60)
    base = re.search(r"web listening on (http://\S+)", web.log()).group(1)  # type: ignore[union-attr]

    now = time.time()
    events = relive(generate_sessions(seed=21, students=16, minutes=3, start_epoch=int(now)), start=now + 1, speed=12)
    http_half, nats_half = events[0::2], events[1::2]
    duplicates = events[::7]  # sent again, over the other path
    invalid_http = {**events[0], "event_id": "bad-http", "type": "quiz"}
    invalid_nats = [
        {**events[1], "event_id": "bad-nats-level", "type": "game", "name": "level_started", "game_id": "g1", "data": {"level": -1}},
        # (an unknown field is no longer one: it is left out, docs/api.md, compatibility)
        {**events[2], "event_id": "bad-nats-time", "occurred_at": "yesterday"},
    ]

    async with aiohttp.ClientSession() as session:
        async def post(batch: list[dict]) -> aiohttp.ClientResponse:
            async with session.post(f"{base}/v1/events", json={"events": batch}) as response:
                await response.read()
                return response

        # In time order, alternating paths batch by batch, each sent once its last event occurred.
        # Each batch also repeats the previous batch's first event over the other path: a retry
        # while its window is open, which the window must count once.
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            await pace(batch[-1])
            retry = [events[start - BATCH]] if start else []
            await post([e for e in batch if e in http_half] + [e for e in retry if e in nats_half])
            await nats_publish(nats_server.url, [e for e in batch if e in nats_half] + [e for e in retry if e in http_half])
        response = await post([invalid_http, events[3]])
        assert response.status == 422, "a batch with an invalid event is refused whole"
        await nats_publish(nats_server.url, invalid_nats)
        await nats_publish(nats_server.url, [e for e in duplicates if e in http_half])
        await post([e for e in duplicates if e in nats_half])

        # Late: an interaction for the first window, once that window is final.
        first_key = min(expected_results(events, window_seconds=WINDOW), key=lambda k: int(k.rsplit(".", 1)[1]))
        await poll_until(lambda: _has(nats_server.url, first_key), timeout=60, what="the first window to close")
        start_of_first = int(first_key.rsplit(".", 1)[1])
        student = first_key.split(".")[1]
        late = {"event_id": "late-1", "student_id": student, "type": "interaction", "name": "answer",
                "occurred_at": moment(start_of_first + 1), "data": {"correct": True}}
        assert (await post([late])).status == 202, "late is not invalid: it is accepted and dead-lettered"

        expected = expected_results(events, window_seconds=WINDOW)

        async def all_written() -> dict | None:
            values = await metrics_values(nats_server.url)
            return values if values.keys() >= expected.keys() else None

        values = await poll_until(all_written, timeout=90, interval=0.5, what="every window in KV")
        assert values.keys() == expected.keys()
        wrong = {k: (values[k], expected[k]) for k in expected if not values_match(values[k], expected[k])}
        assert not wrong, wrong

        # The query API serves exactly the KV values.
        metric, key_student = "engagement", student
        async with session.get(
            f"{base}/v1/metrics/{metric}/{key_student}",
            params={"from": moment(now - 3600), "to": moment(now + 60)},
        ) as response:
            assert response.status == 200
            served = (await response.json())["windows"]
        mine = sorted((k for k in expected if k.startswith(f"{metric}.{key_student}.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        assert [values_match(w, expected[k]) for w, k in zip(served, mine, strict=True)] == [True] * len(mine)
        async with session.get(f"{base}/v1/metrics/{metric}/{quote(key_student)}/latest") as response:
            assert values_match(await response.json(), expected[mine[-1]])

    async with nats_client(nats_server.url) as client:
        results = await read_stream(client, "FAUST_RESULTS")
        letters = await poll_until(
            lambda: _letters(client, 3), timeout=30, what="the dead letters"
        )
    # One result message per final window, the same JSON as in KV, on results.<metric>.<student>.
    published = {}
    for msg in results:
        doc = json.loads(msg.data)
        key = ".".join([doc["metric"], *doc["key"].values(), str(_epoch(doc["window"]["start"]))])
        assert msg.subject == f"results.{doc['metric']}.{doc['key']['student_id']}"
        assert key not in published, f"{key} published twice"
        published[key] = doc
    assert published.keys() == expected.keys()
    assert all(values_match(published[k], expected[k]) for k in expected)
    # Dead letters: the two NATS-path invalid events with reasons, and the late one.
    invalid = [(m.headers or {}).get("Reason", "") for m in letters if m.subject == "deadletter.invalid"]
    assert len(invalid) == 2 and any("data.level" in r for r in invalid) and any("occurred_at" in r for r in invalid), invalid
    # Late: the one sent late, and copies of counted events that came after their window had
    # closed (a closed window no longer knows its ids: the copy is judged late, never counted).
    late_letters = [json.loads(m.data)["event_id"] for m in letters if m.subject == "deadletter.late.engagement"]
    assert "late-1" in late_letters
    assert set(late_letters) - {"late-1"} <= {e["event_id"] for e in duplicates}


async def _has(url: str, key: str) -> bool:
    return key in await metrics_values(url)


async def _letters(client, count: int) -> list | None:
    messages = await read_stream(client, "FAUST_DEADLETTER")
    return messages if len(messages) >= count else None


def _epoch(rfc3339: str) -> int:
    return int(time.mktime(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)
