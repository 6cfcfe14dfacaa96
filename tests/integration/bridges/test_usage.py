"""read_usage on a real server: bytes per stream against its cap, and when a stream is full."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, StreamConfig

from bridges.usage import read_usage

pytestmark = pytest.mark.integration


async def test_streams_report_their_bytes_cap_and_fullness(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="OPEN", subjects=["open.>"]))
    await js.add_stream(
        StreamConfig(name="CAPPED", subjects=["capped.>"], max_bytes=4096, max_msg_size=1024, discard=DiscardPolicy.NEW)
    )
    await js.publish("open.a", b"x" * 100)
    _, streams = await read_usage(nc)
    by_name = {s.stream: s for s in streams}
    assert by_name["OPEN"].bytes > 100 and by_name["OPEN"].max_bytes == -1 and not by_name["OPEN"].full
    capped = by_name["CAPPED"]
    assert (capped.max_bytes, capped.discard, capped.largest, capped.full) == (4096, "new", 1024, False)
    for _ in range(4):  # about 940 bytes each as stored
        await js.publish("capped.a", b"x" * 900)
    account, streams = await read_usage(nc)
    [capped] = [s for s in streams if s.stream == "CAPPED"]
    assert capped.full, capped  # under 1024 bytes left: the next large write is refused
    assert account.bytes >= capped.bytes and account.max_bytes == -1
