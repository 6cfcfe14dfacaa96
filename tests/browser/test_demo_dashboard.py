"""The main job end to end, as a user meets it: ``python -m app demo`` starts everything, the
dashboard opens in a real headless Chromium, its numbers are the ``metrics`` bucket's, a
student's page draws charts and takes a new window without a reload, and Ctrl-C (SIGINT)
leaves no process behind.

A screenshot of each page is saved under ``artifacts/`` (git-ignored); the test prints the paths.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest

from app.simulator.behaviour import student_ids
from testkit.browser import Browser, chromium_or_skip, headless_chromium
from testkit.demo import DemoRun, demo_env, survivors
from testkit.workers import REPO, Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

STUDENTS = 6
ARTIFACTS = REPO / "artifacts"

# Every cell of the overview that shows a stored value: [kv key, field, value as JSON].
CELLS_JS = """[...document.querySelectorAll('[data-key][data-field]')].map(
    e => [e.dataset.key, e.dataset.field, e.dataset.value])"""


async def values_of(url: str, keys: set[str]) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """All keys in the bucket now, and the values of ``keys``."""
    client = await nats.connect(url)
    try:
        kv = await client.jetstream().key_value("metrics")
        all_keys = set(await kv.keys())
        return all_keys, {key: json.loads((await kv.get(key)).value) for key in keys & all_keys}
    finally:
        await client.close()


def newest(keys: set[str], metric: str, student: str) -> str | None:
    mine = [k for k in keys if k.startswith(f"{metric}.{student}.") and k.count(".") == 2]
    return max(mine, key=lambda k: int(k.rsplit(".", 1)[1]), default=None)


async def overview_matches_the_bucket(browser: Browser, nats_url: str) -> bool:
    cells = await browser.evaluate(CELLS_JS)
    shown_keys = {key for key, _, _ in cells}
    keys, values = await values_of(nats_url, shown_keys)
    for key, field, raw in cells:
        if key not in values:
            return False
        stored = values[key]["values"]
        expected = [stored["wins"], stored["games"]] if field == "wins/games" else stored[field]
        if json.loads(raw) != expected:
            return False
    # ... and what is shown is each student's newest window.
    for student in student_ids(STUDENTS):
        for metric in ("engagement", "progression"):
            latest = newest(keys, metric, student)
            if latest is not None and not any(k == latest for k in shown_keys):
                return False
    return True


async def test_the_demo_dashboard_in_a_browser_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    chromium_or_skip()
    with Workers(tmp_path / "logs", demo_env(tmp_path)) as pool:
        process = pool.spawn(
            [sys.executable, "-m", "app", "demo", "--students", str(STUDENTS), "--rate", "15", "--status-every", "2"],
            name="demo",
        )
        demo = DemoRun(process)
        await process.wait_for_log(r"Dashboard: http://\S+", timeout=180)
        started = demo.started()
        assert len(started) >= 6, (started, process.log())  # server, three workers, web, simulator
        assert demo.announced_pids() <= started.keys()

        async with headless_chromium(tmp_path / "chromium", tmp_path / "logs" / "chromium.log") as browser:
            # The overview lists the simulated students with the bucket's numbers.
            await browser.navigate(demo.dashboard)

            async def every_student_listed() -> bool:
                rows = await browser.evaluate("[...document.querySelectorAll('tr[data-student]')].map(r => r.dataset.student)")
                return rows == sorted(student_ids(STUDENTS))

            await poll_until(every_student_listed, timeout=90, interval=0.5, what="a row per simulated student")
            await poll_until(
                lambda: overview_matches_the_bucket(browser, demo.nats_url), timeout=60, interval=0.3,
                what="the overview to show exactly the bucket's newest windows",
            )
            assert await browser.evaluate("document.getElementById('live').dataset.state") == "on"

            # A student's page draws charts; a new window appears on it without a reload.
            keys, _ = await values_of(demo.nats_url, set())
            busiest = Counter(k.split(".")[1] for k in keys if k.startswith("engagement.")).most_common(1)[0][0]
            await browser.navigate(f"{demo.dashboard}/students/{busiest}")
            charts = await browser.evaluate("document.querySelectorAll('figure.chart svg').length")
            assert charts >= 6
            await browser.evaluate("window.__sameDocument = 'yes'")
            bars_js = ("[...document.querySelectorAll('[data-chart=\"engagement.answers\"] rect[data-window]')]"
                       ".map(r => Number(r.dataset.window))")  # fmt: skip
            shown = await browser.evaluate(bars_js)
            assert shown, "the answers chart has bars"

            async def newer_window_in_kv() -> int | None:
                keys, _ = await values_of(demo.nats_url, set())
                latest = newest(keys, "engagement", busiest)
                start = int(latest.rsplit(".", 1)[1]) if latest else 0
                return start if start > max(shown) else None

            fresh = await poll_until(newer_window_in_kv, timeout=60, interval=0.3, what="a new window in the bucket")

            async def on_the_page() -> bool:
                return fresh in await browser.evaluate(bars_js)

            await poll_until(on_the_page, timeout=15, interval=0.2, what=f"window {fresh} on the open page")
            assert await browser.evaluate("window.__sameDocument") == "yes", "the page was reloaded"
            assert int(await browser.evaluate("document.body.dataset.updates")) >= 1
            student_png = await browser.screenshot(ARTIFACTS / "dashboard-student.png")
            await browser.navigate(demo.dashboard)  # by now with a few more windows to show
            await poll_until(every_student_listed, timeout=30, interval=0.5, what="the overview again")
            overview_png = await browser.screenshot(ARTIFACTS / "dashboard-overview.png")
        print(f"\nscreenshots: {overview_png} {student_png}")

        # Ctrl-C: everything stops, in order, and nothing the demo started survives.
        started.update(demo.started())
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        assert await process.wait_exit(120) == 0, process.log()
        log = process.log()
        for line in ("stopped simulator", "stopped web", "stopped workers", "stopped; the data in"):
            assert line in log, log
        assert log.index("stopped simulator") < log.index("stopped web") < log.index("stopped workers")
        assert survivors(started) == [], (started, log)
