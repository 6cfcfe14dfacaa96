"""Where closed windows and rejected events go: the ``metrics`` KV bucket, result subjects, dead letters.

A window's result is written **once**: a create-only KV write (expected revision 0), so the value
of a closed window never changes. A replay after a crash that closes the same window again finds
the key taken, compares, and keeps the first value — logging an error if they differ, which only
a non-deterministic aggregate could cause. The same JSON goes out on ``results.<metric>.<id>``
with ``Nats-Msg-Id`` = the KV key, so a replay does not publish it twice within the duplicate
window; dead letters carry a caller-chosen id for the same reason.

Everything goes through the transport session's pipelined publisher: the caller gets an
awaitable per write and decides when to wait (the windowed table waits before it flushes its
state, so a window never leaves the state before its result is stored).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from bridges.envelope import HDR_MSG_ID
from bridges.public_streams import METRICS_BUCKET, PublicStreams
from bridges.publisher import ExpectationFailed
from bridges.session import TransportSession
from tables.errors import ClosedError

__all__ = ["WindowResults"]

log = logging.getLogger(__name__)


class WindowResults:
    """The ``ResultWriter`` of ``agents.context`` over a worker's transport session."""

    def __init__(self, session: TransportSession, streams: PublicStreams) -> None:
        self._session = session
        self._streams = streams
        self._kv: KeyValue | None = None
        self._open = False

    async def start(self) -> None:
        if self._open:
            return
        await self._session.acquire()
        js = self._session.js
        await self._streams.ensure_results(js)
        await self._streams.ensure_deadletter(js)
        self._kv = await self._streams.ensure_metrics_bucket(js)
        self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self._session.publisher.flush(timeout=30)
            await self._session.release()

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        publisher = self._require_open().publisher
        stored = await publisher.publish(
            f"$KV.{METRICS_BUCKET}.{kv_key}",
            payload,
            {"Nats-Expected-Last-Subject-Sequence": "0"},
        )
        published = await publisher.publish(subject, payload, {HDR_MSG_ID: f"result:{kv_key}"})
        return asyncio.ensure_future(self._settle(kv_key, payload, stored, published))

    async def dead_letter(
        self, subject: str, payload: bytes, *, reason: str, msg_id: str
    ) -> Awaitable[None]:
        # Header values are one line of ASCII; a reason quoting odd input is made to fit.
        safe_reason = reason.encode("ascii", "backslashreplace").decode().replace("\r", " ").replace("\n", " ")
        future = await self._require_open().publisher.publish(
            subject, payload, {HDR_MSG_ID: msg_id, "Reason": safe_reason[:1000]}
        )
        return future

    async def _settle(
        self, kv_key: str, payload: bytes, stored: asyncio.Future, published: asyncio.Future
    ) -> None:
        try:
            await stored
        except ExpectationFailed:
            await self._compare_existing(kv_key, payload)
        await published

    async def _compare_existing(self, kv_key: str, payload: bytes) -> None:
        assert self._kv is not None
        try:
            existing = (await self._kv.get(kv_key)).value
        except KeyNotFoundError:
            existing = None
        if existing is None or json.loads(existing) != json.loads(payload):
            log.error(
                "window %s was already final with another value; keeping the first.\n"
                " stored: %s\n computed now: %s",
                kv_key, existing, payload,
            )

    def _require_open(self) -> TransportSession:
        if not self._open:
            raise ClosedError("the window results writer is not started")
        return self._session
