"""A nats-server whose JetStream store fills up on purpose, and an operator giving it room.

The store must first hold the byte caps the project's streams reserve (JetStream refuses a
stream whose cap does not fit: the three state buckets reserve 64 MiB each), so a test starts
the server with enough for those, lets the processes make their streams, then fills the rest
with a stream of its own (:func:`fill_store`). :func:`raise_store_limit` is the operator's
move: a larger ``max_file_store`` and a configuration reload, nothing restarted.
"""

from __future__ import annotations

from pathlib import Path

from nats.js.api import StreamConfig
from nats.js.errors import APIError

from bridges.server import NatsServer
from testkit.streams import nats_client

__all__ = ["FILLER", "fill_store", "raise_store_limit", "store_config"]

#: the stream a test fills the store with
FILLER = "FILLER"
_CHUNK = 900 * 1024
_SMALL = 4 * 1024
#: room left for what the processes write while the store is being filled
_MARGIN = 64 * 1024


def store_config(path: Path, max_file_store: int) -> Path:
    """Write a nats-server configuration that limits the JetStream store; returns ``path``."""
    path.write_text(f"jetstream {{ max_file_store: {max_file_store} }}\n")
    return path


async def raise_store_limit(server: NatsServer, max_file_store: int) -> None:
    """Give the server's store more room as an operator would: edit the file, reload."""
    assert server.config_file is not None, "start the server with store_config(...)"
    store_config(server.config_file, max_file_store)
    await server.reload()


async def fill_store(url: str, max_file_store: int) -> int:
    """Store messages in :data:`FILLER` until JetStream has no room; the bytes it took.

    JetStream stores a message while the store's use is under its limit, so the last one goes
    over it. Filled close to the limit with small messages first and then topped with a large
    one, the store ends up most of 900 KiB over it: freeing a little (a message expiring, a
    work queue acknowledged) does not let writes through again, so the test's outage lasts
    until it gives the store room.
    """
    async with nats_client(url) as client:
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=FILLER, subjects=[FILLER.lower()]))
        try:
            # The processes write meanwhile too: read the use again before each message.
            for size in (_CHUNK, _SMALL):
                while (await js.account_info()).storage + size + _MARGIN < max_file_store:
                    await js.publish(FILLER.lower(), b"\0" * size)
            while True:
                await js.publish(FILLER.lower(), b"\0" * _CHUNK)
        except APIError as exc:
            if exc.err_code != 10023:
                raise
        return int((await js.stream_info(FILLER)).state.bytes)
