"""Fault (c): a metric worker paused (SIGSTOP) past its lease while live events arrive. Its
partitions move to the other worker; when it resumes (SIGCONT) it is fenced — its late commits
and changelog writes are refused — and rejoins under a new member id; results stay exact.

Run again with provisional values on (``METRICS_UPDATE_SECONDS``): the paused worker wakes up
holding open windows it last wrote provisional values of, whose final values the other worker may
have written meanwhile. A watch of the bucket sees every key's values in order, and no key gets
anything after its final value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bridges.public.metrics_reader import MetricsReader
from bridges.public.streams import PublicStreams
from bridges.server import NatsServer
from testkit.faults import SESSION_TIMEOUT, Deployment, fault_env, start_web_process
from testkit.group import read_group
from testkit.live import HttpTraffic, LiveEvents, assert_results_exact
from testkit.streams import nats_client
from testkit.workers import Workers

pytestmark = [pytest.mark.integration, pytest.mark.faults]

WINDOW, GRACE = 5, 5
AGENT = "engagement"


@contextlib.asynccontextmanager
async def key_values(nats_url: str) -> AsyncIterator[dict[str, list[bool]]]:
    """Every key of the agent's metric -> the ``final`` flag of each value written to it, in order."""
    flags: dict[str, list[bool]] = defaultdict(list)
    async with nats_client(nats_url) as client, MetricsReader(client, streams=PublicStreams()) as reader:
        async with reader.watch(AGENT) as entries:

            async def record() -> None:
                async for entry in entries:
                    flags[entry.key].append(json.loads(entry.value)["final"] is True)

            task = asyncio.create_task(record())
            try:
                yield flags
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def after_final(flags: dict[str, list[bool]]) -> Iterator[str]:
    for key, finals in flags.items():
        if True in finals and finals.index(True) != len(finals) - 1:
            yield key


@pytest.mark.parametrize("update_seconds", ["0", "0.5"], ids=["final-values-only", "provisional-values"])
async def test_a_worker_paused_past_its_lease_is_fenced_and_rejoins_with_exact_results(
    nats_server: NatsServer, tmp_path: Path, update_seconds: str
) -> None:
    env = fault_env(
        nats_server.url, tmp_path / "data", window=WINDOW, grace=GRACE, METRICS_UPDATE_SECONDS=update_seconds
    )
    with Workers(tmp_path / "logs", env) as pool:
        _, url = await start_web_process(pool)
        deployment = await Deployment(pool, nats_server.url).start()
        await deployment.wait_balanced(AGENT)
        async with key_values(nats_server.url) as flags:
            paused, other = deployment.workers[AGENT]
            before = await read_group(nats_server.url, AGENT)
            (old_id,) = [m for m, r in before.members.items() if r.pid == paused.pid]
            async with HttpTraffic(url, LiveEvents(seed=33, run="pause")) as traffic:
                await traffic.wait_accepted(300)
                paused.signal(signal.SIGSTOP)
                try:
                    # The other worker takes every partition once the lease ran out, and processes
                    # (and commits) past what the paused one held.
                    await deployment.wait_balanced(AGENT, only=[other], timeout=SESSION_TIMEOUT + 30)
                    await traffic.wait_accepted(len(traffic.accepted) + 300)
                finally:
                    paused.signal(signal.SIGCONT)
                await paused.wait_for_log(r"lost its membership", timeout=30)
                await deployment.wait_balanced(AGENT, timeout=SESSION_TIMEOUT + 30)
                await traffic.wait_accepted(len(traffic.accepted) + 300)
            values = await assert_results_exact(nats_server.url, traffic.accepted, window=WINDOW)
            after = await read_group(nats_server.url, AGENT)
    new_ids = [m for m, r in after.members.items() if r.pid == paused.pid]
    assert new_ids and old_id not in new_ids, "the paused worker came back under its old member id"
    log = paused.log()
    assert "already final with another value" not in log + other.log()
    assert not list(after_final(flags)), {key: flags[key] for key in after_final(flags)}
    provisional = sum(finals.count(False) for finals in flags.values())
    assert (provisional > 0) == (update_seconds != "0"), f"{provisional} provisional values with {update_seconds} s"
    print(
        f"FAULTS worker-sigstop pauses=1 events={len(traffic.accepted)} windows={len(values)} "
        f"refused_late_writes={log.count('fenced')} provisional_values={provisional} "
        f"keys={len(flags)} values_after_final=0"
    )
