"""The classroom table on a 1280-pixel-wide screen, in a real headless Chromium: every column,
the status's explanation included, is seen without scrolling sideways (issue 14), with students
whose ids, games and reasons are as long as the dashboard shows them.

A real ``python -m app web`` over a real nats-server; the windows are put into the ``metrics``
bucket as the workers write them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bridges.server import NatsServer
from testkit.browser import chromium_or_skip, headless_chromium
from testkit.metrics import put_results
from testkit.streams import nats_client
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

START = 1_714_557_600
WIDTH = 1280
GAMES = ("fraction-frenzy", "math-quest-advanced", "spelling-bee")


def windows(student: str, *, struggling: bool) -> dict[str, dict[str, Any]]:
    """A student's engagement, progression and outcomes windows (struggling: both reasons)."""
    correct, completed = (2, 1) if struggling else (9, 4)
    values = {
        "engagement": {"interactions": 140, "answers": 120, "correct": correct * 12, "accuracy": correct / 10,
                       "active_seconds": 3599.5, "sessions": 12},
        "progression": {"levels_started": 12, "levels_completed": completed * 3, "levels_failed": (5 - completed) * 3,
                        "max_level": 128, "score": 1_234_567, "completion_rate": completed / 5},
    }  # fmt: skip
    results = {
        f"{metric}.{student}.{START}": {"metric": metric, "final": True, "events": 9, "values": value,
                                         "key": {"student_id": student}}
        for metric, value in values.items()
    }  # fmt: skip
    for game in GAMES:
        results[f"outcomes.{student}.{game}.{START}"] = {
            "metric": "outcomes", "final": True, "events": 9, "key": {"student_id": student, "game_id": game},
            "values": {"games": 100, "wins": 99, "losses": 1, "abandons": 0, "win_rate": 0.99},
        }
    return results


async def test_the_classroom_fits_a_1280_pixel_screen_without_scrolling_sideways(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    chromium_or_skip()
    students = {"student-with-a-rather-long-id-0001": True, "s0002": False, "s0003": True}
    async with nats_client(nats_server.url) as client:
        for student, struggling in students.items():
            await put_results(client, windows(student, struggling=struggling))
    env = {"NATS_URL": nats_server.url, "PORT": "0", "DATA_DIR": str(tmp_path / "data")}
    with Workers(tmp_path / "logs", env) as pool:
        web = pool.spawn([sys.executable, "-m", "app", "web"], name="web")
        await web.wait_for_log(r"web listening on http://\S+", timeout=60)
        match = re.search(r"web listening on (http://\S+)", web.log())
        assert match is not None
        async with headless_chromium(tmp_path / "chromium", tmp_path / "logs" / "chromium.log") as browser:
            await browser.send(
                "Emulation.setDeviceMetricsOverride", width=WIDTH, height=900, deviceScaleFactor=1, mobile=False
            )
            await browser.navigate(f"{match.group(1)}/dashboard")

            async def every_row() -> bool:
                return await browser.evaluate("document.querySelectorAll('tr[data-student]').length") == len(students)

            await poll_until(every_row, timeout=30, interval=0.3, what="a row per student")
            assert await browser.evaluate("window.innerWidth") == WIDTH
            sizes = await browser.evaluate(
                "JSON.stringify({page: document.documentElement.scrollWidth, main: document.querySelector('main')"
                ".scrollWidth, room: document.querySelector('main').clientWidth, table: document.querySelector("
                "'table.overview').getBoundingClientRect().right, clipped: [...document.querySelectorAll('td')]"
                ".filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.className)})"
            )
            assert '"clipped":[]' in sizes, sizes
            page, main, room, right = (int(float(v)) for v in re.findall(r'"(?:page|main|room|table)":([\d.]+)', sizes))
            assert page <= WIDTH and main <= room and right <= WIDTH, sizes
            status = await browser.evaluate("document.querySelector('tr.struggling td.status').innerText")
            assert "accuracy 20%" in status and "levels completed 20%" in status
        assert await web.terminate() == 0
