"""Draining: started requests finish, new ones are turned away, the wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from app.web.draining import RequestDrain


def request() -> web.Request:
    return make_mocked_request("POST", "/v1/events")


async def test_a_drain_waits_for_started_requests_and_refuses_new_ones() -> None:
    drain = RequestDrain(retry_after=7)
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=202)

    started = asyncio.ensure_future(drain.middleware(request(), slow))
    await asyncio.sleep(0)
    assert drain.active == 1
    draining = asyncio.ensure_future(drain.drain(timeout=30))
    await asyncio.sleep(0)
    assert not draining.done() and drain.draining

    refused = await drain.middleware(request(), slow)
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "7"
    assert refused.keep_alive is False  # Connection: close

    release.set()
    assert (await started).status == 202
    assert await draining == 0
    assert drain.active == 0


async def test_a_drain_without_requests_is_immediate_and_idempotent() -> None:
    drain = RequestDrain()
    assert await drain.drain(timeout=0) == 0
    assert await drain.drain(timeout=0) == 0


async def test_a_drain_gives_up_after_its_timeout() -> None:
    drain = RequestDrain()
    never = asyncio.Event()

    async def stuck(_: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.Response()

    task = asyncio.ensure_future(drain.middleware(request(), stuck))
    await asyncio.sleep(0)
    assert await drain.drain(timeout=0.01) == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert drain.active == 0


async def test_a_failing_handler_still_counts_down() -> None:
    drain = RequestDrain()

    async def broken(_: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    try:
        await drain.middleware(request(), broken)
    except web.HTTPNotFound:
        pass
    assert drain.active == 0
