"""The ingest benchmark still runs (a smoke test: no speed is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.workers import REPO

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_and_prints_each_phase() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest", "--events", "1000", "--concurrency", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0] == "1000 events per phase, 2 requests in flight, 4 partitions"
    assert [line.split("  ")[0] for line in lines[2:]] == [
        "raw pipelined JetStream", "HTTP batches of 100", "HTTP batches of 1000", "NATS ingest (events.>)",
    ]
