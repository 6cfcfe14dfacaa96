"""A metric written in one file outside the repository is on the dashboard with no other edit, in
a real headless Chromium: ``/dashboard/metrics`` lists it, its page shows each student's latest
final values, which are those an oracle counts from the events sent, and a window closing later
appears on the open page without a reload.

Real processes: nats-server, ``python -m app web``, and ``python -m app worker <path>`` running
the tutorial's ``hints`` module (docs/tutorial.md) from a temporary directory. Events go in over
HTTP ingest.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.server import NatsServer
from testkit.browser import Browser, chromium_or_skip, headless_chromium
from testkit.pipeline import metric_env, start_metric_worker
from testkit.workers import REPO, Workers, poll_until
from tests.integration.test_metric_registry import hint, start_web, tutorial_module

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

WINDOW = 5
#: each row of the metric's page: its key -> value name -> [KV key, exact value, text shown]
ROWS_JS = """Object.fromEntries([...document.querySelectorAll('#keys tr')].map(row => [row.dataset.order,
    Object.fromEntries([...row.querySelectorAll('td[data-value]')].map(
        cell => [cell.dataset.field, [cell.dataset.key, JSON.parse(cell.dataset.value), cell.textContent]]))]))"""


def oracle(events: Iterable[dict[str, Any]], start: int) -> dict[str, dict[str, list[Any]]]:
    """What the page should show for the hints of one window: per student, the hints asked and
    the distinct activities they were asked in, with the KV key they are stored under."""
    hints: dict[str, int] = defaultdict(int)
    activities: dict[str, set[str]] = defaultdict(set)
    for event in events:
        hints[event["student_id"]] += 1
        activities[event["student_id"]].add(event["activity_id"])
    return {
        student: {
            "hints": [f"hints.{student}.{start}", hints[student], str(hints[student])],
            "activities": [f"hints.{student}.{start}", len(activities[student]), str(len(activities[student]))],
        }
        for student in hints
    }


async def send(http: aiohttp.ClientSession, base: str, events: list[dict[str, Any]]) -> None:
    async with http.post(f"{base}/v1/events", json={"events": events}) as response:
        assert response.status == 202, await response.text()


async def rows(browser: Browser) -> dict[str, Any]:
    return dict(await browser.evaluate(ROWS_JS))


async def test_a_metric_file_is_on_the_dashboard_and_its_page_is_live(tmp_path: Path, nats_server: NatsServer) -> None:
    chromium_or_skip()
    module = tmp_path / "metrics" / "hints.py"
    module.parent.mkdir()
    module.write_text(tutorial_module())
    assert not module.is_relative_to(REPO)
    env = metric_env(nats_server.url, tmp_path / "data", window=WINDOW, grace=1, partitions=2)
    with Workers(tmp_path / "logs", env) as pool:
        web, base = await start_web(pool)
        worker = start_metric_worker(pool, str(module), name="hints")
        await worker.wait_ready(timeout=90)
        async with aiohttp.ClientSession() as http, headless_chromium(
            tmp_path / "chromium", tmp_path / "logs" / "chromium.log"
        ) as browser:
            # The list of metrics has it, from its description alone.
            await browser.navigate(f"{base}/dashboard")
            assert await browser.evaluate("document.querySelector('header nav a[href=\"/dashboard/metrics\"]') !== null")

            async def listed() -> bool:
                await browser.navigate(f"{base}/dashboard/metrics")
                return bool(await browser.evaluate("document.querySelector('tr[data-metric=\"hints\"] a') !== null"))

            await poll_until(listed, timeout=30, interval=0.5, what="hints on /dashboard/metrics")
            types = await browser.evaluate(
                "[...document.querySelectorAll('tr[data-metric=\"hints\"] [data-type]')]"
                ".map(e => [e.dataset.field, e.dataset.type])"
            )
            assert types == [["hints", "integer"], ["activities", "integer"]]

            # One window of hints: the page shows what the oracle counts.
            first = int(time.time()) // WINDOW * WINDOW
            events = [hint(0, "s1", "fractions", first), hint(1, "s1", "fractions", first + 0.5),
                      hint(2, "s1", "decimals", first + 1), hint(3, "s2", "fractions", first)]  # fmt: skip
            await send(http, base, events)
            await browser.evaluate("document.querySelector('tr[data-metric=\"hints\"] a').click()")
            expected = oracle(events, first)

            async def shows(wanted: dict[str, Any]) -> bool:
                path = await browser.evaluate("location.pathname")
                return path == "/dashboard/metrics/hints" and await rows(browser) == wanted

            await poll_until(lambda: shows(expected), timeout=30, interval=0.3, what=f"the page to show {expected}")
            heads = await browser.evaluate("[...document.querySelectorAll('thead th')].map(th => th.dataset.type)")
            assert heads == ["key", "UTC", "UTC", "integer", "integer", "not described"]
            await poll_until(
                lambda: browser.evaluate("document.getElementById('live').dataset.state == 'on'"),
                timeout=30, interval=0.2, what="the page's stream to be live",
            )

            # A later window closes: s1's row changes and s3's appears, on the open page.
            await browser.evaluate("window.__sameDocument = 'yes'")
            await poll_until(lambda: time.time() >= first + WINDOW, timeout=WINDOW + 1, interval=0.1, what="the next window")
            later = int(time.time()) // WINDOW * WINDOW
            more = [hint(10, "s1", "algebra", later), hint(11, "s3", "geometry", later), hint(12, "s3", "algebra", later)]
            await send(http, base, more)
            expected = {**expected, **oracle(more, later)}
            await poll_until(lambda: shows(expected), timeout=30, interval=0.3, what=f"the page to show {expected}")
            assert await browser.evaluate("window.__sameDocument") == "yes", "the page was reloaded"
            assert list(await rows(browser)) == ["s1", "s2", "s3"]  # the new row placed in key order
            print(f"\nscreenshot: {await browser.screenshot(REPO / 'artifacts' / 'dashboard-metric.png')}")
        assert await worker.terminate() == 0
        assert await web.terminate() == 0
