"""Fault: a worker with 60 s windows paused (SIGSTOP) past its lease across a window's end, and
resumed (SIGCONT) while its successor is still starting up and recovering.

The paused worker wakes holding the window whose end + grace passed while it was stopped, and
without the events that arrived in the window's last moments: if it closed that window it would
store an incomplete final value, and the successor's complete one would be refused. Its lease
deadline passed long ago, so it must close nothing and write nothing until it has rejoined; the
window is then closed from the changelog and the events, by whoever owns it.

Timeline (``end`` is the first 60 s boundary at least ``LEAD`` seconds after the workers are up):

- live events flow from ``end - TRAFFIC`` until just before ``end`` (none in the next window, so
  the test need not wait a minute more for it);
- ``end - BEFORE_END``: the only worker of the agent is stopped; the events after it are in the
  stream only;
- once its membership has expired on the server and ``end + GRACE`` has passed (the window is due
  in its view), a successor is started; as soon as it has joined the group (it is still
  recovering: no assignment applied yet), the paused worker is resumed.

Every final value must equal the oracle's, and every message on ``results.*`` must be the value
KV holds under its key.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from bridges.server import NatsServer
from contract.results import parse_result
from testkit.faults import SESSION_TIMEOUT, Deployment, fault_env, start_web_process
from testkit.group import read_group
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.pipeline import result_messages
from testkit.workers import WorkerProcess, Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 60, 5
AGENT = "engagement"
#: seconds of live events before the window's end (enough for open windows of every student)
TRAFFIC = 8.0
#: the worker is stopped this long before the window's end: the events after that it never sees
BEFORE_END = 1.5
#: the window's end must be at least this far off once the workers are up
LEAD = TRAFFIC + 1.0


async def at(moment: float) -> None:
    """Until the wall clock reads ``moment`` (the test is timed against window boundaries)."""
    await asyncio.sleep(max(0.0, moment - time.time()))


async def member_ids(nats_url: str, worker: WorkerProcess) -> list[str]:
    return [m for m, record in (await read_group(nats_url, AGENT)).members.items() if record.pid == worker.pid]


def results_differing_from_kv(
    messages: list[tuple[str, dict[str, str], bytes]], values: dict[str, dict[str, object]]
) -> list[str]:
    """The result messages whose payload is not the value KV holds under their key."""
    differing = []
    for subject, headers, payload in messages:
        key = parse_result(payload).kv_key
        if json.loads(payload) != values.get(key) or headers.get("Nats-Msg-Id") != f"result:{key}":
            differing.append(f"{subject} {headers.get('Nats-Msg-Id')}: {payload!r} vs KV {values.get(key)!r}")
    return differing


async def test_a_worker_paused_past_its_lease_writes_no_final_value_and_results_match_kv(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    url_nats = nats_server.url
    env = fault_env(url_nats, tmp_path / "data", window=WINDOW, grace=GRACE)
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        deployment = await Deployment(pool, url_nats, agents=(AGENT,), per_agent=1).start()
        await deployment.wait_balanced(AGENT)
        (paused,) = deployment.workers[AGENT]
        end = (int(time.time() + LEAD) // WINDOW + 1) * WINDOW
        await at(end - TRAFFIC)
        async with HttpTraffic(url, LiveEvents(seed=12, run="fence")) as traffic:
            await at(end - BEFORE_END)
            paused.signal(signal.SIGSTOP)
            try:
                await at(end - 0.4)
                await traffic.stop()  # every event is in the window ending at `end`
                assert max(e["occurred_at"] for e in traffic.accepted) < _rfc3339(end)

                async def lease_gone_and_window_due() -> bool:
                    return time.time() >= end + GRACE + 0.5 and not await member_ids(url_nats, paused)

                await poll_until(lease_gone_and_window_due, timeout=GRACE + 30, interval=0.1, what="the lease to expire")
                successor = deployment.replace(AGENT)
                await poll_until(
                    lambda: member_ids(url_nats, successor), timeout=90, interval=0.05, what="the successor to join"
                )
                group = await read_group(url_nats, AGENT)
            finally:
                paused.signal(signal.SIGCONT)
            resumed_after = time.time() - (end - BEFORE_END)
            (successor_id,) = await member_ids(url_nats, successor)
            # The point of the test: the successor holds nothing yet when the paused worker wakes.
            assert group.members[successor_id].applied == 0, "the successor was assigned before the resume"
        await paused.wait_for_log(r"lost its membership", timeout=30)
        await deployment.wait_balanced(AGENT, timeout=SESSION_TIMEOUT + 60)
        values = await assert_results_exact(url_nats, traffic.accepted, window=WINDOW, metrics=(AGENT,))
        messages = [m for m in await result_messages(url_nats) if m[0].startswith(f"results.{AGENT}.")]
        held = paused.log_count(r"lease may have expired")
        logs = paused.log() + successor.log()
    assert not results_differing_from_kv(messages, values), results_differing_from_kv(messages, values)[:3]
    published = {parse_result(payload).kv_key for _, _, payload in messages}
    assert published == set(values), f"final values never published: {sorted(set(values) - published)[:5]}"
    assert "already final with another value" not in logs
    print(
        f"FAULTS worker-sigstop-60s-windows paused={resumed_after:.1f}s events={len(traffic.accepted)} "
        f"windows={len(values)} result_messages={len(messages)} lease_lapses_logged={held} "
        f"duration={time.monotonic() - started:.0f}s"
    )


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))
