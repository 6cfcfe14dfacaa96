"""Letting in-flight HTTP requests finish on shutdown, uploads included.

aiohttp's own shutdown (``AppRunner.cleanup``) marks every connection closing and from then on
drops the bytes that arrive on it, so a request whose body is still being uploaded can never
finish: it waits out the shutdown timeout and is reset. Shutdown therefore happens in two
steps: first stop listening and wait here until the requests already started have answered
(their uploads keep flowing meanwhile), and only then let aiohttp close the connections.

A request that starts on a kept-alive connection while draining is answered ``503`` with
``Retry-After`` and ``Connection: close``: another process will take it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from app.web.models import error_response

__all__ = ["RequestDrain"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestDrain:
    """Counts requests in flight; :meth:`drain` refuses new ones and waits for the rest."""

    def __init__(self, *, retry_after: int = 2) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._retry_after = str(retry_after)

    @property
    def active(self) -> int:
        return self._active

    @property
    def draining(self) -> bool:
        return self._draining

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._draining:
            response = error_response(
                503, "shutting down; retry the request", headers={"Retry-After": self._retry_after}
            )
            response.force_close()
            return response
        self._active += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> int:
        """Refuse new requests and wait up to ``timeout`` for the started ones; returns how many
        were still running when the time was up. Idempotent."""
        self._draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("%d requests still running after %.0fs of draining", self._active, timeout)
        return self._active
