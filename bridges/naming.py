"""How faust topics, partitions, groups and keys map onto JetStream streams, subjects and KV keys.

One stream per (topic, partition) keeps faust's offsets contiguous: offset = stream sequence
(1-based), so faust's gap bookkeeping never sees holes on ordinary topics.

    ordinary topic   stream  <PREFIX>_<topic>_<p>     subject  <prefix>.<topic>.<p>
    compacting topic stream  <PREFIX>_<topic>_<p>     subjects <prefix>.<topic>.<p>.k.<key>
                                                               <prefix>.<topic>.<p>.fence

A compacting (changelog) stream keeps a bounded number of messages per subject, and the key is
in the subject, which is what makes it compact. Its ``fence`` subject carries the marker a new
owner writes when it takes the partition over; every changelog write states the fence sequence it
expects, so writes from a fenced-off (older) owner are refused by the server.

Names from faust (topics like ``app-table-changelog``, user topics with dots) are encoded into a
single subject token with :func:`encode_token`: ``[A-Za-z0-9_-]`` stay, every other byte becomes
``=XX`` (hex). The result is also valid in stream names and KV keys.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from tables.errors import ConfigError

__all__ = ["Naming", "decode_token", "encode_token"]

_SAFE = re.compile(rb"[A-Za-z0-9_-]")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Keys up to this many bytes are spelled in the subject (readable in `nats` tooling); longer ones
# are hashed, which keeps subjects short. Both forms are prefixed so they cannot collide.
_MAX_INLINE_KEY = 96


def encode_token(name: str) -> str:
    """Encode any string into one NATS subject token (also a valid stream-name / KV-key part)."""
    if not name:
        raise ConfigError("name", name, "must not be empty", kind="Argument")
    if _SAFE_NAME.fullmatch(name):
        return name
    raw = name.encode()
    return "".join(
        chr(b) if _SAFE.fullmatch(bytes([b])) else f"={b:02X}" for b in raw
    )


def decode_token(token: str) -> str:
    """Inverse of :func:`encode_token`."""
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "=":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(token[i]))
            i += 1
    return out.decode()


def key_token(key: bytes | None) -> str:
    """The subject token for a message key in a compacting topic."""
    if key is None:
        return "n"  # faust allows a None key; it is one key like any other
    if len(key) <= _MAX_INLINE_KEY:
        return "b" + base64.urlsafe_b64encode(key).decode().rstrip("=")
    return "h" + hashlib.sha256(key).hexdigest()


@dataclass(frozen=True)
class Naming:
    """The naming scheme under one prefix (several deployments can share one NATS account)."""

    prefix: str = "faust"

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigError(
                "prefix", self.prefix, "must match [a-z][a-z0-9_-]{0,31}", kind="Setting"
            )

    # -- topics ---------------------------------------------------------------------------

    # The per-partition names are asked for on every send: computed once each.

    @lru_cache(maxsize=4096)  # noqa: B019 - instances are few and live for the process
    def stream(self, topic: str, partition: int) -> str:
        return f"{self.prefix.upper()}_{encode_token(topic)}_{partition}"

    @lru_cache(maxsize=4096)  # noqa: B019
    def subject(self, topic: str, partition: int) -> str:
        """The subject of an ordinary topic partition (and the root of a compacting one)."""
        return f"{self.prefix}.{encode_token(topic)}.{partition}"

    def key_subject(self, topic: str, partition: int, key: bytes | None) -> str:
        return f"{self.subject(topic, partition)}.k.{key_token(key)}"

    def data_filter(self, topic: str, partition: int, compacting: bool) -> str:
        """The subject filter matching a partition's data messages (fence markers excluded)."""
        root = self.subject(topic, partition)
        return f"{root}.k.>" if compacting else root

    def fence_subject(self, topic: str, partition: int) -> str:
        return f"{self.subject(topic, partition)}.fence"

    def stream_subjects(self, topic: str, partition: int, compacting: bool) -> list[str]:
        root = self.subject(topic, partition)
        return [f"{root}.>"] if compacting else [root]

    # -- buckets --------------------------------------------------------------------------

    @property
    def topics_bucket(self) -> str:
        """KV bucket: topic name -> its partition count and settings."""
        return f"{self.prefix}_topics"

    @property
    def offsets_bucket(self) -> str:
        """KV bucket: committed offsets per consumer group and topic partition."""
        return f"{self.prefix}_offsets"

    @property
    def groups_bucket(self) -> str:
        """KV bucket: group membership, leader lease and assignments."""
        return f"{self.prefix}_groups"

    def topic_key(self, topic: str) -> str:
        return encode_token(topic)

    def offset_key(self, group: str, topic: str, partition: int) -> str:
        return f"{encode_token(group)}.{encode_token(topic)}.{partition}"
