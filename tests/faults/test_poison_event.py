"""Fault (d): a poison event — valid by the contract, but it makes an agent's aggregator raise.

It goes to ``deadletter.error.<metric>`` with the error as the reason; the worker keeps
processing that partition (the events after it count), it does not crash or restart, and no
part of the poisoned event is counted.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.faults import fault_env, start_web_process
from testkit.live import LiveEvents, rfc3339
from testkit.oracle import format_window_time
from testkit.pipeline import dead_letters, metrics_values
from testkit.workers import Workers, poll_until
from tests.faults.poisoned import POISON

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 5, 2
MODULE = Path(__file__).with_name("poisoned.py")


def poisoned(n: int, student: str, now: float) -> dict[str, Any]:
    return {
        "event_id": f"poison-{n}", "student_id": student, "type": "interaction", "name": "hint_opened",
        "occurred_at": rfc3339(now), "data": {"marker": POISON},
    }


def expected_counts(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """KV key -> value of the poisoned metric for the events that are not poisoned."""
    counts: Counter[tuple[str, int]] = Counter()
    for event in events:
        if event.get("data", {}).get("marker") != POISON:
            moment = datetime.fromisoformat(event["occurred_at"]).timestamp()
            counts[(event["student_id"], int(moment) // WINDOW * WINDOW)] += 1
    return {
        f"poisoned.{student}.{start}": {
            "metric": "poisoned", "key": {"student_id": student},
            "window": {"start": format_window_time(start), "end": format_window_time(start + WINDOW)},
            "final": True, "events": n, "values": {"events": n, "checked": n},
        }
        for (student, start), n in counts.items()
    }


async def test_a_poison_event_is_dead_lettered_with_its_error_and_the_partition_goes_on(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = fault_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        worker = pool.spawn([sys.executable, "-m", "app", "worker", str(MODULE)], name="poisoned", METRICS_PORT="0")
        await worker.wait_ready(timeout=90)
        live = LiveEvents(seed=44, students=4, run="fine")
        sent: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            for round_ in range(6):
                # Poison in the middle of every batch, for every student (so every partition).
                now = time.time()
                batch = [*live.batch(10, now), *(poisoned(round_ * 4 + i, f"s{i:03d}", now) for i in range(4)),
                         *live.batch(10, now)]
                async with session.post(f"{url}/v1/events", json={"events": batch}) as response:
                    assert response.status == 202, await response.text()
                sent.extend(batch)
                await poll_until(lambda target=4 * (round_ + 1): worker.log_count("raised") >= target, timeout=30,
                                 what="the worker to reach the poison events")
        expected = expected_counts(sent)

        async def final() -> dict[str, Any] | None:
            values = {k: v for k, v in (await metrics_values(nats_server.url)).items() if k.startswith("poisoned.")}
            return values if values.keys() >= expected.keys() else None

        values = await poll_until(final, timeout=60, interval=0.5, what="every window of the poisoned metric")
        letters = await dead_letters(nats_server.url)
        assert worker.alive(), worker.log()[-3000:]
        log = worker.log()
    assert values == expected
    errors = [(s, h, json.loads(p)) for s, h, p in letters if s == "deadletter.error.poisoned"]
    assert sorted(e["event_id"] for _, _, e in errors) == sorted(e["event_id"] for e in sent if "poison-" in e["event_id"])
    assert all(h["Reason"] == f"PoisonedEvent: cannot aggregate event {e['event_id']}" for _, h, e in errors)
    assert len(letters) == len(errors), "only the poison events are dead letters"
    assert log.count("Worker ready") == 1, "the worker restarted (a crash loop)"
    print(f"FAULTS poison-event poison={len(errors)} events={len(sent)} windows={len(values)}")
