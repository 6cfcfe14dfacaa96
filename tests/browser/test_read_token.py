"""The dashboard behind READ_TOKEN, in a real headless Chromium: the page asks for the token once,
the browser keeps it in a cookie its scripts cannot read, and with it the overview, a student's
page and the live event stream work as without a token.

A real ``python -m app web`` with ``READ_TOKEN`` set, over a real nats-server; the windows are
put into the ``metrics`` bucket as the workers write them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bridges.server import NatsServer
from testkit.browser import Browser, chromium_or_skip, headless_chromium
from testkit.metrics import put_results
from testkit.oracle import expected_results, generate_sessions
from testkit.streams import nats_client
from testkit.workers import Workers, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

START = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=5, students=4, minutes=4, start_epoch=START))
TOKEN = "read-7c1e5b"  # what a user types into the form
ROWS_JS = "[...document.querySelectorAll('tr[data-student]')].map(r => r.dataset.student)"


async def live(browser: Browser) -> bool:
    return bool(await browser.evaluate("document.getElementById('live').dataset.state") == "on")


async def test_the_dashboard_signs_in_once_and_keeps_the_token_in_an_http_only_cookie(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    chromium_or_skip()
    env = {"NATS_URL": nats_server.url, "PORT": "0", "DATA_DIR": str(tmp_path / "data"), "READ_TOKEN": TOKEN}
    async with nats_client(nats_server.url) as client:
        await put_results(client, RESULTS)
    students = sorted({value["key"]["student_id"] for value in RESULTS.values()})
    with Workers(tmp_path / "logs", env) as pool:
        web = pool.spawn([sys.executable, "-m", "app", "web"], name="web")
        await web.wait_for_log(r"web listening on http://\S+", timeout=60)
        match = re.search(r"web listening on (http://\S+)", web.log())
        assert match is not None
        url = match.group(1)

        async with headless_chromium(tmp_path / "chromium", tmp_path / "logs" / "chromium.log") as browser:
            # No token yet: the sign-in form, and no student's data.
            await browser.navigate(f"{url}/dashboard/students/{students[0]}")
            assert await browser.evaluate("document.querySelectorAll('form.login input[name=token]').length") == 1
            assert await browser.evaluate("document.querySelectorAll('figure.chart').length") == 0

            # The token typed once: back on the page asked for, charts drawn.
            await browser.evaluate(
                f"document.querySelector('form.login input[name=token]').value = {json.dumps(TOKEN)};"
                "document.querySelector('form.login').submit()"
            )

            async def charts() -> int:
                path = await browser.evaluate("location.pathname")
                count = await browser.evaluate("document.querySelectorAll('figure.chart svg').length")
                return int(count) if path == f"/dashboard/students/{students[0]}" else 0

            assert await poll_until(charts, timeout=30, interval=0.2, what="the student's charts") >= 6
            assert TOKEN not in await browser.evaluate("location.href")
            assert await browser.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

            # The cookie opens the overview and its live stream too.
            await browser.navigate(f"{url}/dashboard")

            async def every_student_listed() -> bool:
                return await browser.evaluate(ROWS_JS) == students

            await poll_until(every_student_listed, timeout=30, interval=0.3, what="a row per student")
            await poll_until(lambda: live(browser), timeout=30, interval=0.2, what="the event stream to be live")
            later = START + 3600
            template = next(v for k, v in RESULTS.items() if k.startswith(f"engagement.{students[1]}."))
            async with nats_client(nats_server.url) as client:
                await put_results(client, {f"engagement.{students[1]}.{later}": template})

            async def new_window_shown() -> bool:
                html = await browser.evaluate(f"document.getElementById('row-{students[1]}').outerHTML")
                return f"engagement.{students[1]}.{later}" in html

            await poll_until(new_window_shown, timeout=30, interval=0.2, what="the new window, without a reload")
        assert TOKEN not in web.log()
        assert await web.terminate() == 0

