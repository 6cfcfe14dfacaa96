"""Waiting for the signals that end a long-running command (SIGINT, SIGTERM).

A leaf module: the CLI, the web process and the simulator all wait here, and it imports nothing
of the project, so none of them has to import another to share it.
"""

from __future__ import annotations

import asyncio
import signal

__all__ = ["until_signalled"]


async def until_signalled() -> signal.Signals:
    """Wait for SIGINT or SIGTERM; returns which arrived."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _resolve, received, sig)
    try:
        return await received
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _resolve(received: asyncio.Future[signal.Signals], sig: signal.Signals) -> None:
    if not received.done():  # a second signal before the waiter ran
        received.set_result(sig)
