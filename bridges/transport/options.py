"""Transport options, read once from the broker URL's query string.

``faust.App(broker="nats://host:4222?session_timeout=6&replicas=3")``: faust passes the URL
through untouched, which keeps every option of the driver next to the broker it applies to and
out of faust's own settings object. Credentials do not belong here (faust prints the broker URL);
use ``broker_credentials=NatsCredentials(...)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridges.limits import UNLIMITED, parse_duration, parse_size
from bridges.transport.topics import DEFAULT_CHANGELOG_MAX_BYTES, DEFAULT_TOPIC_RETENTION
from tables.errors import ConfigError

__all__ = ["TransportOptions"]

#: read by ConnectionSettings.from_urls instead
_CONNECTION_PARAMS = {"creds", "tls_ca", "tls_cert", "tls_key", "connect_deadline", "inbox_prefix"}


@dataclass(frozen=True)
class TransportOptions:
    #: subject root and stream/bucket name prefix (several deployments may share an account)
    prefix: str = "faust"
    #: JetStream replicas of every stream and bucket created (1, 3 or 5)
    replicas: int = 1
    #: a worker that stops renewing its lease is considered gone after this many seconds
    session_timeout: float = 6.0
    #: how long the group leader lets membership settle before assigning
    rebalance_delay: float = 0.2
    #: messages asked for per pull request, and kept per partition at most
    fetch_batch: int = 512
    fetch_capacity: int = 2048
    #: bytes of records kept per partition, about (a record may be a batch of many events)
    fetch_max_bytes: int = 16 * 1024 * 1024
    #: seconds before an unacknowledged publish is sent again
    ack_timeout: float = 5.0
    #: unacknowledged publishes before senders wait
    max_in_flight: int = 8192
    #: seconds a publish id is remembered by a stream to drop duplicates (at most its max age)
    duplicate_window: float = 120.0
    #: seconds an ordinary topic keeps messages when faust asks for no retention (``7d`` works)
    topic_retention: float = DEFAULT_TOPIC_RETENTION
    #: bytes each partition of an ordinary topic keeps at most (-1: no byte limit; ``10G`` works)
    topic_max_bytes: int = UNLIMITED
    #: bytes each partition of a compacting topic (a table's changelog) keeps at most
    changelog_max_bytes: int = DEFAULT_CHANGELOG_MAX_BYTES

    def __post_init__(self) -> None:
        if self.replicas not in (1, 3, 5):
            raise ConfigError("replicas", self.replicas, "must be 1, 3 or 5", kind="Broker option")
        for name in ("session_timeout", "ack_timeout", "duplicate_window", "rebalance_delay"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(name, getattr(self, name), "must be a finite number", kind="Broker option")
        for name in ("session_timeout", "ack_timeout", "duplicate_window"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "must be > 0", kind="Broker option")
        if self.session_timeout < 1.5:
            raise ConfigError(
                "session_timeout", self.session_timeout, "must be >= 1.5 seconds", kind="Broker option"
            )
        if self.rebalance_delay < 0:
            raise ConfigError("rebalance_delay", self.rebalance_delay, "must be >= 0", kind="Broker option")
        for name in ("fetch_batch", "fetch_capacity", "fetch_max_bytes", "max_in_flight"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must be >= 1", kind="Broker option")
        if self.fetch_capacity < self.fetch_batch:
            raise ConfigError(
                "fetch_capacity", self.fetch_capacity, "must be >= fetch_batch", kind="Broker option"
            )
        if not math.isfinite(self.topic_retention) or self.topic_retention <= 0:
            # Every topic has a bound: an ordinary one has no other than its age unless topic_max_bytes.
            raise ConfigError("topic_retention", self.topic_retention, "must be > 0 seconds", kind="Broker option")
        if self.topic_max_bytes != UNLIMITED and self.topic_max_bytes < 1:
            raise ConfigError(
                "topic_max_bytes", self.topic_max_bytes, "must be -1 (no byte limit) or >= 1", kind="Broker option"
            )
        if self.changelog_max_bytes < 1:
            # A changelog has no age limit (its latest values are a table's state): bytes bound it.
            raise ConfigError("changelog_max_bytes", self.changelog_max_bytes, "must be >= 1", kind="Broker option")

    @classmethod
    def from_urls(cls, urls: Iterable[Any]) -> TransportOptions:
        """Options from the query strings of the broker URLs (later URLs may not contradict)."""
        found: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for url in urls:
            for name, values in parse_qs(urlsplit(str(url)).query).items():
                if name in _CONNECTION_PARAMS:
                    continue
                if name not in fields:
                    raise ConfigError(
                        name, values[-1], f"unknown broker option; known: {sorted(fields)}",
                        kind="Broker option",
                    )
                found[name] = _convert(name, values[-1], fields[name].type)
        return cls(**found)


#: options written as durations (``7d``) or sizes (``10G``) as well as plain numbers
_SPELLED: dict[str, tuple[str, Callable[[str], Any]]] = {
    "topic_retention": ("a duration: seconds or 30s, 15m, 12h, 7d", parse_duration),
    "topic_max_bytes": ("a size: bytes or 512M, 10G (powers of 1024), -1 for none", parse_size),
    "changelog_max_bytes": ("a size: bytes or 512M, 10G (powers of 1024)", parse_size),
    "fetch_max_bytes": ("a size: bytes or 512K, 16M (powers of 1024)", parse_size),
}


def _convert(name: str, raw: str, annotation: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if name in _SPELLED:
        expected, parse = _SPELLED[name]
        try:
            return parse(raw)
        except ValueError:
            raise ConfigError(name, raw, f"must be {expected}", kind="Broker option") from None
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(name, raw, f"must be a number ({kind})", kind="Broker option") from None
    return raw
