"""faust's own ``examples/windowed_aggregation.py`` runs unchanged on ``nats://``.

The example keeps a tumbling 10 s window table with ``expires=1 s`` and a cleanup every second:
its changelog keeps records for 1 s, shorter than the 2 minutes the transport remembers publish
ids for. JetStream refuses a duplicate window longer than a stream's max age, so the worker used
to crash at start; and once it started, its fence marker aged out with the records and every
write was refused. The example must start, count ~10 events a second into windows and, as each
window closes, print it and send the aggregate to its sink topic.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nats
import pytest

from bridges.server import NatsServer
from testkit.faust_examples import example
from testkit.workers import Workers

pytestmark = pytest.mark.integration

#: how the example prints a closed window
WINDOW_LINE = re.compile(r"processing window:(\d+) events,mean: ([0-9.]+),timestamp ([0-9.]+)")


@pytest.fixture
def windowed_aggregation(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    # pytest's cache keeps the download between runs; without it (-p no:cacheprovider), the run's tmp.
    pytest_cache = getattr(request.config, "cache", None)
    cache = Path(pytest_cache.mkdir("faust-sdist")) if pytest_cache is not None else tmp_path / "faust-sdist"
    cache.mkdir(exist_ok=True)
    try:
        return example("windowed_aggregation.py", cache, tmp_path)
    except RuntimeError as exc:
        pytest.fail(f"faust's example could not be had: {exc}")


async def test_windowed_aggregation_runs_unchanged_on_nats(
    nats_server: NatsServer, windowed_aggregation: Path, tmp_path: Path
) -> None:
    argv = [
        sys.executable, "-m", "testkit.faust_examples", str(windowed_aggregation), nats_server.url,
        "worker", "-l", "info", "--without-web",
    ]
    with Workers(tmp_path / "logs", {}) as pool:
        worker = pool.spawn(argv, name="windowed-agg")
        # Windows are aligned to 10 s: the first one closed may be partial, the second is whole.
        await worker.wait_for_log(WINDOW_LINE.pattern, timeout=60, count=2)
        code = await worker.terminate()
        log = worker.log()
    assert code == 0, log[-4000:]
    assert "Traceback" not in log and "[ERROR]" not in log, log[-4000:]

    printed = [(int(n), float(mean), float(start)) for n, mean, start in WINDOW_LINE.findall(log)]
    assert len(printed) >= 2
    whole = printed[1]
    assert 20 <= whole[0] <= 110, f"a 10 s window of one event per 0.1 s counted {whole[0]}"
    assert all(0.0 <= mean <= 1.0 for _, mean, _ in printed)
    assert [start for _, _, start in printed] == sorted({start for _, _, start in printed}), "each window once"

    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        sent = []
        for seq in range(1, (await js.stream_info("FAUST_agg-event_0")).state.last_seq + 1):
            value = json.loads((await js.get_msg("FAUST_agg-event_0", seq)).data)
            sent.append((value["count"], round(value["mean"], 2), float(value["date"])))
        changelog = (await js.stream_info("FAUST_windowed-agg-tumbling_table-changelog_0")).config
    finally:
        await client.close()
    # What the example printed is what it sent to its sink topic, window by window.
    assert sent[: len(printed)] == printed
    # The changelog keeps records for `expires`, and remembers publish ids no longer than that.
    assert (changelog.max_age, changelog.duplicate_window) == (1.0, 1.0)
