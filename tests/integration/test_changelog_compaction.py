"""A windowed changelog holds what is open (issue 13): thousands of windows opened and closed leave
a few messages per changelog partition, a worker killed half-way is replaced and every final is
still exact, and the replicas the workers promote hold the open windows, not the closed ones.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import nats
import pytest

from bridges.naming import Naming
from bridges.server import NatsServer
from testkit.oracle import expected_results
from testkit.pipeline import dead_letters, ingest, metric_env, metrics_values, start_metric_worker, values_match
from testkit.workers import Workers, poll_until

pytestmark = pytest.mark.integration

WINDOW, GRACE, PARTITIONS = 1, 1, 4
STUDENTS, SECONDS = 100, 30  # 3,000 engagement windows, each opened and closed
#: a clean changelog partition: two markers, the watermark's two records, the fence (at most two)
CLEAN = 6
CHANGELOG = "engagement-engagement-windows-changelog"


def _event(n: int, student: int, at: float) -> dict:
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    return {"event_id": f"c{n}", "student_id": f"s{student}", "type": "interaction", "name": "answer",
            "occurred_at": moment, "data": {"correct": n % 3 == 0}}


async def _changelog_messages(url: str) -> list[int]:
    client = await nats.connect(url)
    try:
        js, naming = client.jetstream(), Naming()
        return [(await js.stream_info(naming.stream(CHANGELOG, p))).state.messages for p in range(PARTITIONS)]
    finally:
        await client.close()


async def test_thousands_of_closed_windows_leave_a_few_changelog_messages_and_exact_results(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    env = metric_env(url, tmp_path / "data", window=WINDOW, grace=GRACE, partitions=PARTITIONS)
    events: list[dict] = []
    with Workers(tmp_path / "logs", env) as pool:
        first, second = (start_metric_worker(pool, "engagement", name=n) for n in ("first", "second"))
        for worker in (first, second):
            await worker.wait_for_log(r"engagement: partition \d+ resumes", timeout=60)
        # Live events, every student once a second: each second's windows close a grace later.
        replacement = None
        for second_no in range(SECONDS):
            now = time.time()
            batch = [_event(len(events) + n, student, now) for n, student in enumerate(range(STUDENTS))]
            events += batch
            await ingest(url, batch, partitions=PARTITIONS, now=now)
            if second_no == SECONDS // 3:
                await first.kill()  # its partitions go to the survivor's standby replicas
                replacement = start_metric_worker(pool, "engagement", name="replacement")
            await asyncio.sleep(max(0.0, now + 1 - time.time()))
        expected = expected_results(events, window_seconds=WINDOW)
        assert len(expected) >= STUDENTS * (SECONDS - 1)

        async def all_written() -> dict | None:
            values = await metrics_values(url)
            return values if values.keys() >= expected.keys() else None

        values = await poll_until(all_written, timeout=120, interval=0.5, what="every final in KV")
        wrong = {k: (values[k], expected[k]) for k in expected if not values_match(values[k], expected[k])}
        assert not wrong, dict(list(wrong.items())[:5])
        assert not await dead_letters(url)

        async def settled() -> list[int] | None:
            counts = await _changelog_messages(url)
            return counts if all(c <= CLEAN for c in counts) else None

        counts = await poll_until(settled, timeout=60, interval=0.5, what="the changelog partitions to settle")
        assert replacement is not None
        logs = "\n".join(w.log() for w in (first, second, replacement))
        assert "Traceback" not in logs and "changelog purges failed" not in logs
    print(f"COMPACTION windows={len(expected)} changelog messages per partition={counts}")
    # The partitions taken over from the killed worker resumed from replicas (the survivor's
    # standby, or the replacement's fresh read) holding the windows open then and hardly
    # anything else, after hundreds of windows had closed in each.
    resumed = re.findall(
        r"resumes at offset (\d+) with (\d+) open windows \((\d+) to repair, (\d+) deletions kept\)", logs
    )
    mid_stream = [r for r in resumed if int(r[0]) > 0]
    assert mid_stream, f"no partition was taken over mid-stream: {resumed}"
    for _, open_windows, repairs, kept in mid_stream:
        assert int(open_windows) + int(repairs) + int(kept) <= 3 * STUDENTS, resumed
