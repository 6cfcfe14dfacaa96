"""The slow-client attack of issue 14, over raw sockets: uploads that send their headers and part
of a body and then stall, and connections that send nothing (or half a request head) and wait.

Each client runs until the server closes its connection, and reports how long that took and the
status it was answered with, if any (an upload refused unread may be reset before its answer
can be read: the kernel drops the answer with the unread bytes). :func:`attack` starts them all
and yields while they wait, so a test can check what the server does meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["Closed", "attack", "idle_connection", "stalled_upload"]

_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) ")


@dataclass(frozen=True)
class Closed:
    """How a stalled client ended: the status it was answered with (None: none could be read) and
    seconds from its connection's opening (or, for an upload, the end of what it sent) until the
    server closed it."""

    status: int | None
    seconds: float


async def _until_closed(reader: asyncio.StreamReader, started: float) -> Closed:
    answer = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            answer += chunk
    found = _STATUS.match(answer)
    return Closed(int(found.group(1)) if found else None, time.monotonic() - started)


async def stalled_upload(host: str, port: int, *, sent: int, declared: int = 1024 * 1024) -> Closed:
    """POST /v1/events declaring ``declared`` bytes, send ``sent`` of them, then stall."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + b'{"events": [' + b" " * max(0, sent - 12))
            await writer.drain()
        return await _until_closed(reader, time.monotonic())
    finally:
        writer.close()


async def idle_connection(host: str, port: int, *, half_a_head: bool = False) -> Closed:
    """Connect and send nothing (or the start of a request head), then wait."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    try:
        if half_a_head:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
        return await _until_closed(reader, started)
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def attack(
    host: str, port: int, *, uploads: int, sent: int, idle: int
) -> AsyncIterator[list[asyncio.Task[Closed]]]:
    """``uploads`` stalled uploads of ``sent`` bytes and ``idle`` idle connections (every other one
    with half a request head), started before this yields their tasks; cancelled on exit."""
    tasks = [asyncio.create_task(stalled_upload(host, port, sent=sent)) for _ in range(uploads)]
    tasks += [asyncio.create_task(idle_connection(host, port, half_a_head=i % 2 == 1)) for i in range(idle)]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
