"""How much of its storage the JetStream account and each of its streams use, read from NATS.

Every stream and bucket of the deployment has a byte cap when its ``*_MAX_BYTES`` setting says
so (docs/operations.md). A capped stream is **full** once it has less room left than the largest
message it takes: a bucket (discard new) then refuses writes, and a stream (discard old) drops its
oldest records before their age. The account's own limit, when it has one, caps them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.api import DiscardPolicy

__all__ = ["AccountUsage", "StreamUsage", "read_usage"]

#: what nats-server takes as one message unless configured otherwise
_DEFAULT_MAX_PAYLOAD = 1024 * 1024


@dataclass(frozen=True)
class StreamUsage:
    stream: str
    bytes: int
    messages: int
    #: the byte cap; -1: none
    max_bytes: int
    #: "new": a full stream refuses writes; "old": it drops its oldest records
    discard: str
    #: the largest message the stream takes
    largest: int

    @property
    def full(self) -> bool:
        return self.max_bytes > 0 and self.max_bytes - self.bytes < self.largest


@dataclass(frozen=True)
class AccountUsage:
    """The JetStream account's file storage: bytes used, and its limit (-1: none)."""

    bytes: int
    max_bytes: int


async def read_usage(client: Client) -> tuple[AccountUsage, list[StreamUsage]]:
    """The account's storage and every stream's, by stream name (a few requests per call)."""
    js = client.jetstream()
    account = await js.account_info()
    largest_payload = int(getattr(client, "max_payload", 0) or _DEFAULT_MAX_PAYLOAD)
    streams: list[StreamUsage] = []
    while True:
        page = await js.streams_info(offset=len(streams))
        for info in page:
            config, state = info.config, info.state
            max_msg = config.max_msg_size if config.max_msg_size and config.max_msg_size > 0 else largest_payload
            streams.append(
                StreamUsage(
                    stream=str(config.name),
                    bytes=int(state.bytes or 0),
                    messages=int(state.messages or 0),
                    max_bytes=int(config.max_bytes) if config.max_bytes and config.max_bytes > 0 else -1,
                    discard="new" if config.discard == DiscardPolicy.NEW else "old",
                    largest=min(max_msg, largest_payload),
                )
            )
        if not page:
            break
    streams.sort(key=lambda usage: usage.stream)
    return AccountUsage(int(account.storage), int(account.limits.max_storage)), streams
