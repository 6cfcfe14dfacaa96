"""app/worker/process.py before faust starts: the pre-flight connect to NATS leaves nothing behind
when it fails, and Ctrl-C while it waits ends the process quietly. No nats-server: a closed port
stands for a NATS that cannot be reached.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from app.worker import run_worker
from bridges.server import free_port
from tables.errors import BrokenError
from testkit.workers import Workers

pytestmark = pytest.mark.integration


class RecordingPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, keeping every loop it makes so a test can look at them afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.loops: list[asyncio.AbstractEventLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        self.loops.append(loop)
        return loop


@pytest.fixture
def policy() -> Iterator[RecordingPolicy]:
    previous = asyncio.get_event_loop_policy()
    recording = RecordingPolicy()
    asyncio.set_event_loop_policy(recording)
    try:
        yield recording
    finally:
        asyncio.set_event_loop_policy(previous)


def test_a_worker_that_cannot_reach_nats_closes_its_loop_and_raises(policy: RecordingPolicy) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    settings = Settings.from_env({"NATS_URL": url, "NATS_CONNECT_DEADLINE": "1"})
    with pytest.raises(BrokenError) as refused:
        run_worker("engagement", settings, settings.nats_urls)
    assert url in str(refused.value)
    (loop,) = policy.loops
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="no current event loop"):
        policy.get_event_loop()  # unset, not left pointing at the closed loop


async def test_ctrl_c_while_reaching_nats_ends_the_worker_quietly_with_130(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    env = {"NATS_URL": url, "NATS_CONNECT_DEADLINE": "60", "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as pool:
        worker = pool.spawn([sys.executable, "-m", "app", "worker", "engagement"], name="impatient")
        await worker.wait_for_log(r"NATS not reachable at", timeout=60)
        worker.signal(signal.SIGINT)
        code = await worker.wait_exit(timeout=30)
        log = worker.log()
    assert code == 130, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
