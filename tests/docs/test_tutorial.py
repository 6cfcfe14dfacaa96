"""docs/tutorial.md runs: its module file, its examples, and the module in a real worker."""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from bridges.server import NatsServer
from testkit.pipeline import ingest, metrics_values
from testkit.workers import Workers, poll_until

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks() -> tuple[str, list[str]]:
    """The module's source (the block starting '# file: hints.py') and the example blocks."""
    found = _BLOCK.findall(TUTORIAL.read_text())
    module = [b for b in found if b.startswith("# file: hints.py")]
    assert len(module) == 1, "the tutorial must show the module once"
    return module[0], [b for b in found if not b.startswith("# file:")]


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("hints", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_of_the_tutorial_runs(tmp_path: Path) -> None:
    source, examples = blocks()
    path = tmp_path / "hints.py"
    path.write_text(source)
    namespace = dict(vars(load_module(path)))
    assert len(examples) >= 3
    for example in examples:
        exec(compile(example, str(TUTORIAL), "exec"), namespace)  # noqa: S102 - our own docs


@pytest.mark.integration
async def test_the_tutorial_module_runs_in_a_real_worker(tmp_path: Path, nats_server: NatsServer) -> None:
    source, _ = blocks()
    path = tmp_path / "hints.py"
    path.write_text(source)
    env = {"NATS_URL": nats_server.url, "METRICS_WINDOW_SECONDS": "5", "METRICS_GRACE_SECONDS": "1",
           "PARTITIONS": "2", "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as pool:
        worker = pool.spawn([sys.executable, "-m", "app", "worker", str(path)], name="hints", METRICS_PORT="0")
        await worker.wait_ready(timeout=60)
        now = time.time()
        start = int(now) // 5 * 5  # the window open now; it closes about a second after it ends
        events = [
            {"event_id": f"h{i}", "student_id": "s1", "type": "interaction", "name": "hint",
             "activity_id": activity, "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
             "data": {}}
            for i, activity in enumerate(["fractions", "fractions", "decimals"])
        ]
        await ingest(nats_server.url, events, partitions=2, now=now)
        key = f"hints.s1.{start}"

        async def result() -> dict | None:
            return (await metrics_values(nats_server.url)).get(key)

        value = await poll_until(result, timeout=30, what=f"{key} in KV")
    assert value["values"] == {"hints": 3, "activities": 2}
    assert value["events"] == 3 and value["final"] is True
