"""``python -m benchmarks --quick`` runs every stage and reports every row with its ratio.

A smoke test: the machines are shared and noisy, so no speed is asserted — only that the suite
still runs end to end, checks its results against the oracle (a stage computing wrong results
fails the run) and writes a complete report without touching the text around it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.workers import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = [
    "ceiling", "core", "core-plain", "pipeline-1", "pipeline-2",
    "projection-2c-4p", "projection-4c-4p", "projection-8c-4p", "projection-8c-16p", "projection-16c-16p",
    "projection-32c-16p", "pipeline-1-metrics",
    "trivial-core", "trivial-transport",
    "ingest-raw", "ingest-http-100", "ingest-http-1000", "ingest-nats",
    "query-range-short", "query-range-long", "query-latest-short", "query-latest-long",
    "latency-p50", "latency-p99",
    "burst-late", "burst-lag",
    "memory-idle", "memory-step1", "memory-step2", "memory-step3",
    "history-recovery-1", "history-rss-1", "history-recovery-2", "history-rss-2",
    "history-recovery-3", "history-rss-3",
    "storage-event", "storage-window", "storage-result", "storage-changelogs", "storage-year",
    "agent-1", "agent-2", "agent-2-nostandby", "failover-sigterm", "failover-sigkill", "recovery-standby", "recovery-cold",
    "rebalance-twice", "rebalance-steady", "rebalance-join-stayed", "rebalance-join-moved", "rebalance-leave-stayed",
    "rebalance-leave-moved",
    "doors-rss-unbounded", "doors-rss-bounded", "dashboard-update-200", "dashboard-update-20000",
    "backfill-live", "backfill-rate", "backfill-complete",
]
TARGETS = [
    "full pipeline, 1 process per agent / ceiling (issue 16; median pair)",
    "full pipeline, 1 process per agent / faust core",
    "transport / faust core (trivial agent)",
    "HTTP ingest, batches of 1000 / raw JetStream",
    "NATS ingest / raw JetStream (issue 16)",
    "query p99, long history / short (1-hour range)",
    "query p99, long history / short (/latest)",
    "close latency p99 beyond end + grace, seconds",
    "late events during a burst at 3x worker throughput",
    "rebalance: messages processed twice (join + leave)",
    "rebalance: join, a partition that stayed / steady flow's longest gap",
    "rebalance: leave, a partition that stayed / steady flow's longest gap",
    "web RSS growth under the slow-client attack, bounded / unbounded",
    "dashboard update cost, 20,000 / 200 students",
]


@pytest.mark.timeout(400)
def test_the_quick_bench_reports_every_row_with_a_ratio(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nnotes kept by hand\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(report)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the bench then stops its own servers and workers
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the quick bench took over 300 s:\n{output[-4000:]}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output[-4000:]

    text = report.read_text()
    assert text.startswith("# Benchmarks\n\nnotes kept by hand\n")
    assert "Command: `python -m benchmarks --quick`" in text and "Machine: " in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    assert [row[0].strip("| `") for row in rows] == ROWS
    ratios = [row[4] for row in rows]
    assert all(" of " in ratio or ratio == "1.00 (reference)" for ratio in ratios), ratios
    targets = [line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.endswith(("| met |", "| **missed** |"))]
    assert targets == TARGETS
    assert [line.split()[0] for line in output.splitlines() if line.split() and line.split()[0] in ROWS] == ROWS
