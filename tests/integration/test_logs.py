"""LOG_FORMAT as the processes honour it: a real metric worker and web process, their output
(stdout and stderr) sent to a file as a log shipper would. In JSON every line is one JSON object,
from the first to the last after SIGTERM; in text no terminal escape code reaches the file."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.workers import WorkerProcess, Workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def pool(tmp_path: Path, nats_server: NatsServer) -> Iterator[Workers]:
    env = {"NATS_URL": nats_server.url, "PORT": "0", "PARTITIONS": "2", "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as workers:
        yield workers


async def run_both(pool: Workers, log_format: str) -> tuple[WorkerProcess, WorkerProcess]:
    """A worker and the web process, started, used once, and stopped with SIGTERM."""
    worker = pool.spawn([sys.executable, "-m", "app", "worker", "engagement"], name="worker", LOG_FORMAT=log_format)
    web = pool.spawn([sys.executable, "-m", "app", "web"], name="web", LOG_FORMAT=log_format)
    await worker.wait_for_log(r"Worker ready", timeout=90)
    await web.wait_for_log(r"web listening on http://[\d.]+:\d+", timeout=60)
    url = web.log().split("web listening on ", 1)[1].split()[0]
    async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as response:
        assert response.status == 200
    assert await web.terminate() == 0
    assert await worker.terminate() == 0
    return worker, web


async def test_json_logs_parse_line_by_line(pool: Workers) -> None:
    for process in await run_both(pool, "json"):
        lines = process.log().splitlines()
        assert len(lines) >= 5, process.log()
        documents = []
        for number, line in enumerate(lines, 1):
            try:
                documents.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{process.name} line {number} is not JSON: {line!r}")
        assert all({"time", "level", "logger", "message"} <= doc.keys() for doc in documents)
        if process.name == "worker":
            # Records that name a partition carry it as a field, and the metric with it.
            resumed = [doc for doc in documents if "resumes at offset" in doc["message"]]
            assert resumed and all(doc["metric"] == "engagement" and doc["partition"] in (0, 1) for doc in resumed)
        else:
            assert any(doc["message"].startswith("web listening on http://") for doc in documents)


async def test_text_logs_written_to_a_file_carry_no_escape_codes(pool: Workers) -> None:
    for process in await run_both(pool, "text"):
        log = process.log()
        assert "Worker ready" in log or "web listening on" in log
        assert "\x1b[" not in log, f"{process.name} wrote terminal escape codes: {log[-2000:]!r}"
        assert "-INT-" not in log and "OK ^" not in log  # faust's console messages
