"""A real headless Chromium for browser tests, driven over the Chrome DevTools Protocol.

No driver package: Chromium is started with ``--remote-debugging-port=0``, writes the port it
chose to ``<profile>/DevToolsActivePort``, and one page target is driven over a WebSocket with
aiohttp's client (``Page.navigate``, ``Runtime.evaluate``, ``Page.captureScreenshot``).

Chromium comes from the system packages (Debian's ``chromium``, ``/usr/bin/chromium``); ``./dev
test`` installs it when it is missing and apt-get can. Without it, :func:`chromium_or_skip`
skips the test and says why. The browser runs in its own process group, which is killed by the
PID this module started, whatever happens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from testkit.workers import poll_until

__all__ = ["Browser", "CHROMIUM", "chromium_or_skip", "headless_chromium"]

CHROMIUM = Path("/usr/bin/chromium")

_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
)


def chromium_or_skip() -> Path:
    """The Chromium binary, or a skip that says how to get it."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    how = (
        "`./dev test` installs it with apt-get (as root)"
        if shutil.which("apt-get")
        else "this machine has no apt-get to install Debian's chromium package with"
    )
    pytest.skip(f"headless Chromium is not installed at {CHROMIUM}: {how}")


class Browser:
    """One page of a headless Chromium; see :func:`headless_chromium`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._calls.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(AssertionError(f"CDP error: {data['error']}"))
                    else:
                        future.set_result(data.get("result", {}))
            else:
                for method, waiter in self._events:
                    if method == data.get("method") and not waiter.done():
                        waiter.set_result(data.get("params", {}))
        for future in self._calls.values():
            if not future.done():
                future.set_exception(AssertionError("the browser closed its DevTools connection"))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        return await asyncio.wait_for(future, timeout)

    def _expect(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.append((method, future))
        future.add_done_callback(lambda f: self._events.remove((method, f)))
        return future

    async def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Open ``url`` and wait for its load event."""
        loaded = self._expect("Page.loadEventFired")
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise AssertionError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(loaded, timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))
        return path


async def _page_socket_url(port: int) -> str:
    async with aiohttp.ClientSession() as session:

        async def page() -> str | None:
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
            except aiohttp.ClientError:
                return None
            urls = [t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"]
            return urls[0] if urls else None

        return str(await poll_until(page, timeout=30, what="a Chromium page target"))


@contextlib.asynccontextmanager
async def headless_chromium(profile: Path, log_path: Path) -> AsyncIterator[Browser]:
    """A headless Chromium with a fresh ``profile``; killed by PID (its group) on the way out."""
    binary = chromium_or_skip()
    profile.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(binary), *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        port_file = profile / "DevToolsActivePort"

        def port() -> int | None:
            if process.poll() is not None:
                raise AssertionError(f"Chromium exited with {process.returncode}; see {log_path}")
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            return int(lines[0]) if len(lines) >= 2 else None

        debug_port = await poll_until(port, timeout=60, what="Chromium's DevTools port")
        url = await _page_socket_url(debug_port)
        async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
            browser = Browser(ws)
            try:
                await browser.send("Page.enable")
                await browser.send("Runtime.enable")
                yield browser
            finally:
                await browser.close()
    finally:
        # The group holds Chromium's own helpers (zygote, renderers, GPU): all started by it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
