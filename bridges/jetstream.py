"""Small JetStream helpers shared by the parts of bridges (the driver, groups, the public surface).

- :func:`parse_ack_subject` reads the stream sequence, consumer sequence, timestamp and pending
  count from a delivered message's reply subject, which is about 10x cheaper than nats-py's
  ``msg.metadata``.
- :func:`ensure_bucket` and :func:`ensure_stream` create-or-reuse idempotently, so several
  workers starting at once do not race each other into errors.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from tables.errors import BrokenError

__all__ = ["AckInfo", "ensure_bucket", "ensure_stream", "parse_ack_subject"]

log = logging.getLogger(__name__)


class AckInfo(NamedTuple):
    consumer: str
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int


def parse_ack_subject(reply: str) -> AckInfo | None:
    """Parse ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``.

    Also the 12-token form with domain and account hash. Returns None for anything else.
    """
    tokens = reply.split(".")
    n = len(tokens)
    if n == 9:
        base = 5
    elif n >= 11:
        base = 7
    else:
        return None
    if tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    try:
        return AckInfo(
            tokens[base - 2],
            int(tokens[base]),
            int(tokens[base + 1]),
            int(tokens[base + 2]),
            int(tokens[base + 3]),
        )
    except ValueError:
        return None


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or accept an existing one with the same name.

    An existing stream whose configuration differs is kept as it is (changing retention of live
    data behind an operator's back is worse than a warning).
    """
    try:
        await js.add_stream(config)
        return
    except BadRequestError as exc:
        if exc.err_code != 10058:  # stream name already in use with a different configuration
            raise BrokenError(f"cannot create stream {config.name}: {exc.description}") from None
    log.warning("stream %s exists with a different configuration; using it as it is", config.name)


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    history: int = 1,
    replicas: int = 1,
    ttl: float | None = None,
    limit_marker_ttl: float | None = None,
) -> KeyValue:
    """Open a KV bucket, creating it when missing."""
    try:
        return await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        pass
    config = KeyValueConfig(
        bucket=bucket,
        history=history,
        replicas=replicas,
        storage=StorageType.FILE,
        ttl=ttl,
        limit_marker_ttl=limit_marker_ttl,
        direct=True,
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError as exc:
        if exc.err_code == 10058:  # created concurrently by another worker
            return await js.key_value(bucket)
        raise BrokenError(f"cannot create KV bucket {bucket}: {exc.description}") from None
