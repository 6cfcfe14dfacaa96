"""Small JetStream helpers shared by the parts of bridges (the driver, groups, the public surface).

- :func:`parse_ack_subject` reads the stream sequence, consumer sequence, timestamp and pending
  count from a delivered message's reply subject, which is about 10x cheaper than nats-py's
  ``msg.metadata``.
- :func:`ensure_bucket` and :func:`ensure_stream` create-or-reuse idempotently, so several
  workers starting at once do not race each other into errors, and bring an existing stream's
  limits (what it keeps, and for how long) in line with the caller's, in place.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Final, NamedTuple

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from bridges.limits import MIB, UNLIMITED, format_duration, format_size
from tables.errors import BrokenError

__all__ = [
    "AckInfo",
    "STATE_BUCKET_MAX_BYTES",
    "bounded_duplicate_window",
    "ensure_bucket",
    "ensure_stream",
    "limits_update",
    "parse_ack_subject",
    "stored_at",
]

log = logging.getLogger(__name__)


class AckInfo(NamedTuple):
    consumer: str
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int


def _ack_numbers(tokens: list[str]) -> int | None:
    """Where the stream sequence sits among an ack subject's tokens; None if it is not one.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or the 11- and
    12-token forms with domain and account hash (and a random token) before the stream.
    """
    n = len(tokens)
    if n == 9:
        base = 5
    elif n >= 11:
        base = 7
    else:
        return None
    return base if tokens[0] == "$JS" and tokens[1] == "ACK" else None


def parse_ack_subject(reply: str) -> AckInfo | None:
    """Parse a JetStream delivery's ack subject (see :func:`_ack_numbers` for its forms).

    Returns None for anything else.
    """
    tokens = reply.split(".")
    base = _ack_numbers(tokens)
    if base is None:
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


def stored_at(reply: str) -> float | None:
    """When JetStream stored the message delivered with ``reply``, epoch seconds, from its ack
    subject as :func:`parse_ack_subject` reads it; None when ``reply`` is not an ack subject.

    For the per-message paths that need only this: it reads the one number (about half the
    time of :func:`parse_ack_subject`), leaving the others unread.
    """
    tokens = reply.split(".")
    base = _ack_numbers(tokens)
    if base is None:
        return None
    stamp = tokens[base + 2]
    return int(stamp) / 1e9 if stamp.isascii() and stamp.isdigit() else None


#: The byte cap of the buckets that hold the transport's own state (topic registry, offsets,
#: groups): one small key per topic, group partition or member, so 64 MiB is over a thousand times
#: what a deployment of this project writes, and a runaway writer still cannot fill the store.
STATE_BUCKET_MAX_BYTES: Final = 64 * MIB

#: The fields of a stream's configuration that bound what it keeps: ensure_* keeps them in line
#: with the caller's. JetStream changes all of them in place.
_LIMIT_FIELDS: Final = ("max_age", "max_bytes", "discard", "duplicate_window", "allow_msg_ttl")
#: JetStream's "insufficient storage resources available", also when byte caps do not fit
_INSUFFICIENT_RESOURCES: Final = 10047
#: Other fields a caller sets whose difference is reported but left alone: some cannot change in
#: place (storage, retention policy) and the rest (subjects, replicas) are an operator's move.
_OTHER_FIELDS: Final = ("subjects", "retention", "storage", "num_replicas", "max_msgs_per_subject")


def bounded_duplicate_window(window: float, max_age: float) -> float:
    """``window`` capped at ``max_age`` (0: no age limit): JetStream refuses a longer one."""
    return min(window, max_age) if max_age > 0 else window


def limits_update(current: StreamConfig, wanted: StreamConfig) -> tuple[StreamConfig, list[str]] | None:
    """``current`` with ``wanted``'s limits and the changes as ``field old -> new``; None if equal.

    ``wanted.discard`` None keeps the current policy. A duplicate window is never narrowed (the
    event sink widens the events topic's to the contract's 10 minutes while the transport asks
    for 2), except to fit under a shorter max age.
    """
    max_age = wanted.max_age or 0.0
    updated = dataclasses.replace(
        current,
        max_age=max_age,
        max_bytes=wanted.max_bytes if wanted.max_bytes is not None else UNLIMITED,
        discard=wanted.discard if wanted.discard is not None else current.discard,
        duplicate_window=bounded_duplicate_window(
            max(current.duplicate_window or 0.0, wanted.duplicate_window or 0.0), max_age
        ),
        # Only ever switched on (JetStream cannot switch it off): a stream whose messages age
        # out needs it for the markers that must not (see TopicSpec.ages_out).
        allow_msg_ttl=bool(current.allow_msg_ttl or wanted.allow_msg_ttl),
    )
    changes = [
        f"{name} {_shown(name, getattr(current, name))} -> {_shown(name, getattr(updated, name))}"
        for name in _LIMIT_FIELDS
        if _shown(name, getattr(current, name)) != _shown(name, getattr(updated, name))
    ]
    return (updated, changes) if changes else None


def _shown(name: str, value: Any) -> str:
    """A limit as the log shows it; equal when JetStream means the same (None and 0, False)."""
    if name == "max_bytes":
        return format_size(UNLIMITED if value is None else int(value))
    if name in ("max_age", "duplicate_window"):
        return format_duration(float(value or 0))
    if name == "allow_msg_ttl":
        return "on" if value else "off"
    return str(value.value if isinstance(value, DiscardPolicy) else value)


async def ensure_stream(js: JetStreamContext, config: StreamConfig, *, update_limits: bool = True) -> None:
    """Create the stream, or accept an existing one with the same name and apply ``config``'s limits.

    An existing stream whose limits (max age, max bytes, discard policy, duplicate window,
    per-message TTLs) differ is updated in place, never deleted and recreated: it loses no message beyond what the new
    limits themselves remove, and the change is logged old -> new. ``update_limits=False`` uses
    an existing stream as it is (readers, which neither own the settings nor may change streams).
    Other differences (subjects, replicas, storage, ...) are left as they are, with a warning.
    The duplicate window is capped at the max age, which JetStream requires.
    """
    config = dataclasses.replace(
        config, duplicate_window=bounded_duplicate_window(config.duplicate_window, config.max_age or 0.0)
    )
    assert config.name is not None
    try:
        await js.add_stream(config)
        return
    except BadRequestError as exc:
        if exc.err_code != 10058:  # stream name already in use with a different configuration
            raise BrokenError(f"cannot create stream {config.name}: {_reason(exc)}") from None
    except APIError as exc:
        if not await _created_meanwhile(js, config.name, exc):
            raise BrokenError(f"cannot create stream {config.name}: {_reason(exc)}") from None
    current = await _stream_config(js, config.name)
    if update_limits:
        current = await _apply_limits(js, current, config)
    differ = [
        name for name in _OTHER_FIELDS
        if getattr(config, name) is not None and getattr(config, name) != getattr(current, name)
    ]
    if not update_limits and limits_update(current, config) is not None:
        differ.append("limits")
    if differ:
        log.warning(
            "stream %s exists with a different configuration (%s); using it as it is",
            config.name, ", ".join(differ),
        )


async def _created_meanwhile(js: JetStreamContext, stream: str, exc: APIError) -> bool:
    """Whether JetStream's refusal to create ``stream`` for lack of room was a race lost to
    another process creating the same stream, which now exists.

    Two processes creating one capped stream at once (workers starting together) race in the
    server: the second passes the "does it exist" check before the first is made, and its
    reservation check then counts the first one's ``max_bytes`` as well as its own. When the
    store's reservations are within one cap of full, the second is refused with "insufficient
    storage" though the stream it asked for is there (nats-server 2.15;
    tests/integration/bridges/test_jetstream.py reproduces it).
    """
    if exc.err_code != _INSUFFICIENT_RESOURCES:
        return False
    try:
        await js.stream_info(stream)
    except NotFoundError:
        return False
    log.info("stream %s: created by another process meanwhile; using it", stream)
    return True


def _reason(exc: APIError) -> str:
    if exc.err_code == _INSUFFICIENT_RESOURCES:
        return (
            f"{exc.description} (JetStream reserves each stream's max_bytes in the server's store when "
            "it is set: lower the byte caps or give JetStream more storage)"
        )
    return str(exc.description)


async def _stream_config(js: JetStreamContext, name: str) -> StreamConfig:
    try:
        return (await js.stream_info(name)).config
    except NotFoundError:
        raise BrokenError(f"stream {name} disappeared while it was being set up") from None


async def _apply_limits(js: JetStreamContext, current: StreamConfig, wanted: StreamConfig) -> StreamConfig:
    """Update ``current`` in place to ``wanted``'s limits; log what changed, or why it could not."""
    update = limits_update(current, wanted)
    if update is None:
        return current
    updated, changes = update
    try:
        info = await js.update_stream(updated)
    except (APIError, NatsTimeoutError) as exc:
        # Not recreated instead: that would drop every message. The stream goes on as it is.
        reason = _reason(exc) if isinstance(exc, APIError) else "no answer (is the update permitted?)"
        log.error(
            "stream %s: JetStream refused to change its limits in place (%s): %s. It keeps its "
            "current limits and messages; change them with `nats stream edit %s` or adjust the setting",
            current.name, "; ".join(changes), reason, current.name,
        )
        return current
    log.warning("stream %s: limits changed in place: %s", current.name, "; ".join(changes))
    return info.config


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    *,
    history: int = 1,
    replicas: int = 1,
    ttl: float | None = None,
    limit_marker_ttl: float | None = None,
    max_bytes: int = STATE_BUCKET_MAX_BYTES,
    update_limits: bool = True,
) -> KeyValue:
    """Open a KV bucket, creating it when missing; an existing one gets ``ttl`` and ``max_bytes``.

    The limits of an existing bucket are changed in place as :func:`ensure_stream` does
    (``update_limits=False``: used as it is). Its discard policy stays KV's: a full bucket
    refuses writes rather than dropping keys.
    """
    try:
        kv = await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        pass
    else:
        if update_limits:
            wanted = StreamConfig(max_age=ttl or 0.0, max_bytes=max_bytes, discard=None)
            await _apply_limits(js, await _stream_config(js, f"KV_{bucket}"), wanted)
        return kv
    config = KeyValueConfig(
        bucket=bucket,
        history=history,
        replicas=replicas,
        storage=StorageType.FILE,
        ttl=ttl,
        max_bytes=max_bytes,
        limit_marker_ttl=limit_marker_ttl,
        direct=True,
    )
    try:
        return await js.create_key_value(config)
    except BadRequestError as exc:
        if exc.err_code == 10058:  # created concurrently by another worker
            return await js.key_value(bucket)
        raise BrokenError(f"cannot create KV bucket {bucket}: {exc.description}") from None
    except APIError as exc:
        if await _created_meanwhile(js, f"KV_{bucket}", exc):
            return await js.key_value(bucket)
        raise BrokenError(f"cannot create KV bucket {bucket}: {_reason(exc)}") from None
