"""``.creds`` files (a user JWT and its nkey seed), as NATS deployments with decentralised auth use.

The server trusts an operator and knows its account (testkit/nats_jwt.py mints them as
``nsc`` would). The web process and a metric worker run with ``NATS_CREDS`` only, results are
read back with the project's client, and the seeds appear in no log; a credential the server
does not trust fails with a clear error naming the server, neither a hang nor a traceback loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridges.connection import ConnectionSettings, connect
from bridges.public.results_client import ResultsClient
from bridges.server import NatsServer
from contract.results import parse_result
from tables.errors import BrokenError
from testkit.faults import Deployment, fault_env, start_web_process
from testkit.live import HttpTraffic, LiveEvents
from testkit.nats_jwt import Operator
from testkit.oracle import expected_results
from testkit.pipeline import metrics_values, values_match
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WINDOW, GRACE = 4, 2


@pytest.fixture
def operator() -> Operator:
    return Operator()


@pytest.fixture
async def server(tmp_path: Path, operator: Operator) -> AsyncIterator[NatsServer]:
    config = tmp_path / "operator.conf"
    config.write_text(operator.server_config())
    async with NatsServer(tmp_path / "nats", config_file=config) as started:
        yield started


async def test_the_web_process_and_a_worker_run_on_creds_files_alone(
    server: NatsServer, operator: Operator, tmp_path: Path
) -> None:
    creds = {role: operator.user_creds(tmp_path, role) for role in ("web", "worker", "reader")}
    env = fault_env(server.url, tmp_path / "data", window=WINDOW, grace=GRACE, NATS_CREDS=str(creds["worker"]))
    with Workers(tmp_path / "logs", env) as pool:
        web, url = await start_web_process(pool, NATS_CREDS=str(creds["web"]))
        await Deployment(pool, server.url, agents=("engagement",), per_agent=1).start()
        live = LiveEvents(seed=5, run="creds")
        async with HttpTraffic(url, live) as traffic:
            await traffic.wait_accepted(200)
        expected = {
            k: v for k, v in expected_results(traffic.accepted, window_seconds=WINDOW).items()
            if v["metric"] == "engagement"
        }
        reader = ConnectionSettings.from_urls(server.url, creds_file=str(creds["reader"]))

        async def all_final() -> dict[str, dict[str, Any]] | None:
            values = await metrics_values(server.url, user_credentials=str(creds["reader"]))
            return values if {k for k, v in values.items() if v["final"]} >= expected.keys() else None

        values = await poll_until(all_final, timeout=90, interval=0.5, what="every engagement window final in KV")
        assert values.keys() == expected.keys()
        assert all(values_match(values[k], expected[k]) for k in expected)
        async with ResultsClient.connect(reader, parse_result) as client, \
                client.watch(metric="engagement", include_existing=True) as watched:
            first = await anext(aiter(watched))
            assert first.kv_key in values
        logs = "".join(process.log() for process in pool)
    # Every login was accepted: the server logs a refused one as an "authentication error" (the
    # untrusted-creds test below checks that it does).
    assert "authentication error" not in server.log_file.read_text()
    assert web.log() and "Worker ready" in logs
    for path in creds.values():
        assert Operator.seed_of(path) not in logs


async def test_an_untrusted_creds_file_fails_with_the_servers_named_and_no_secret(
    server: NatsServer, operator: Operator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = operator.user_creds(tmp_path, "stranger", signed_by=Operator())
    settings = ConnectionSettings.from_urls(server.url, creds_file=str(stranger), connect_deadline=3)
    started = time.monotonic()
    with pytest.raises(BrokenError) as refused:
        await connect(settings)
    message = str(refused.value)
    assert server.url in message and "Authorization Violation" in message
    assert time.monotonic() - started < 30  # gave up at its deadline instead of hanging
    seed = Operator.seed_of(stranger)
    assert seed not in message and seed not in caplog.text and seed not in repr(settings)
    # What the test above relies on: the server logs the refusal in these words.
    assert "authentication error" in server.log_file.read_text()


async def test_a_worker_with_an_untrusted_creds_file_says_why_and_exits(
    server: NatsServer, operator: Operator, tmp_path: Path
) -> None:
    stranger = operator.user_creds(tmp_path, "stranger", signed_by=Operator())
    env = fault_env(
        server.url, tmp_path / "data", window=WINDOW, grace=GRACE,
        NATS_CREDS=str(stranger), NATS_CONNECT_DEADLINE="3",
    )
    with Workers(tmp_path / "logs", env) as pool:
        worker = pool.spawn([sys.executable, "-m", "app", "worker", "engagement"], name="stranger")
        code = await worker.wait_exit(timeout=60)
        log = worker.log()
    assert code != 0
    assert "Authorization Violation" in log and server.url in log
    assert "Traceback" not in log
    assert Operator.seed_of(stranger) not in log
