"""One frozen settings object, read once from the environment at the edge of the program.

Every variable is listed in :data:`VARIABLES` with its default and meaning (the README's table
is generated from it and checked by a test). Bad values fail at start with a message naming the
variable, the value and the problem; secrets are held in :class:`~bridges.connection.Secret` and
never printed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bridges.connection import ConnectionSettings, NatsCredentials, Secret
from bridges.public.event_sink import DEDUPE_WINDOW
from bridges.limits import DAY, MIB, UNLIMITED, Limits, format_duration, parse_duration, parse_size
from bridges.public.streams import PublicLimits, PublicStreams
from bridges.transport.topics import DEFAULT_CHANGELOG_MAX_BYTES
from tables.errors import ConfigError

__all__ = ["Settings", "VARIABLES"]

T = TypeVar("T")

#: name -> (default shown in docs, meaning)
VARIABLES: dict[str, tuple[str, str]] = {
    "NATS_URL": ("(embedded server)", "NATS server URLs, comma-separated; unset: start an embedded nats-server"),
    "NATS_CONNECT_DEADLINE": ("60", "seconds a process keeps trying to reach NATS at start before it gives up"),
    "NATS_USER": ("", "user name for NATS"),
    "NATS_PASSWORD": ("", "password for NATS (secret)"),
    "NATS_TOKEN": ("", "token for NATS (secret)"),
    "NATS_CREDS": ("", "path of a NATS .creds file (JWT and nkey seed)"),
    "NATS_TLS_CA": ("", "CA certificate file for TLS"),
    "NATS_TLS_CERT": ("", "client certificate file for TLS"),
    "NATS_TLS_KEY": ("", "client key file for TLS"),
    "NATS_INBOX_PREFIX": ("_INBOX", "subject prefix of this process's reply inboxes (one per role with NATS permissions)"),
    "NATS_PREFIX": ("faust", "prefix of every subject, stream and bucket the workers create"),
    "NATS_REPLICAS": ("1", "JetStream replicas of streams and buckets (1, 3 or 5)"),
    "SESSION_TIMEOUT": ("6", "seconds after which a silent worker's partitions move to others"),
    "PARTITIONS": ("8", "partitions of the event topic (the most worker processes per agent)"),
    "DATA_DIR": ("./data", "where the embedded nats-server and the workers keep their files"),
    "PORT": ("8080", "HTTP port of the web process"),
    "INGEST_TOKEN": ("", "when set, HTTP ingest requires 'Authorization: Bearer <token>' (secret)"),
    "METRICS_WINDOW_SECONDS": ("60", "tumbling window size of the learning metrics"),
    "METRICS_GRACE_SECONDS": ("10", "how long after a window's end late events still count"),
    "METRICS_UPDATE_SECONDS": (
        "0", "how often open windows' current values go to KV, marked \"final\": false; 0: never, else at least 0.1"
    ),
    "LOG_LEVEL": ("info", "debug, info, warning or error"),
    # Retention (docs/operations.md has the table): durations are seconds or 30s, 15m, 12h, 7d;
    # sizes are bytes or 512M, 10G, 1T (powers of 1024), -1 for no byte limit.
    "EVENTS_RETENTION": (
        "7d", "how long the events topic keeps events (how far back a new metric can be computed); at least 10m"
    ),
    "EVENTS_MAX_BYTES": ("-1", "bytes each events topic partition keeps at most; the oldest go first"),
    "INGEST_RETENTION": ("7d", "how long events published over NATS wait in the INGEST work queue"),
    "INGEST_MAX_BYTES": ("-1", "bytes the INGEST work queue keeps at most; the oldest go first"),
    "RESULTS_RETENTION": ("7d", "how long the RESULTS stream keeps published results (how far back a replay reaches)"),
    "RESULTS_MAX_BYTES": ("-1", "bytes the RESULTS stream keeps at most; the oldest go first"),
    "DEADLETTER_RETENTION": ("14d", "how long the DEADLETTER stream keeps invalid and late events"),
    "DEADLETTER_MAX_BYTES": ("-1", "bytes the DEADLETTER stream keeps at most; the oldest go first"),
    "METRICS_TTL": ("90d", "how long a window's value stays in the metrics bucket after its last write"),
    "METRICS_MAX_BYTES": ("-1", "bytes the metrics bucket holds at most; when full, new values are refused"),
    "CHANGELOG_MAX_BYTES": (
        "1G", "bytes each partition of a worker's state changelog holds at most; when full, its writes are refused"
    ),
}

_LOG_LEVELS = ("debug", "info", "warning", "error")

#: the shortest period of provisional values other than 0 (off)
_MIN_UPDATE_SECONDS = 0.1

#: How durations and sizes are written (shown when one cannot be read).
_DURATION_RULE = "a duration: seconds, or a number with a d, h, m or s suffix (7d, 12h, 30m, 45s)"
_SIZE_RULE = "a size: bytes, or a number with a K, M, G or T suffix (powers of 1024: 512M, 10G), or -1"
#: The smallest byte cap taken: a cap of a few bytes is a slip (10 meant as 10G), and would make
#: the stream drop or refuse every message.
_MIN_MAX_BYTES = MIB
#: JetStream holds ages in int64 nanoseconds and sizes in int64 bytes; these stay well inside.
_MAX_DURATION = 36500 * DAY
_MAX_MAX_BYTES = 1 << 50


@dataclass(frozen=True)
class Settings:
    nats_urls: tuple[str, ...] = ()
    nats_connect_deadline: float = 60.0
    nats_user: str | None = None
    nats_password: Secret | None = None
    nats_token: Secret | None = None
    nats_creds: str | None = None
    nats_tls_ca: str | None = None
    nats_tls_cert: str | None = None
    nats_tls_key: str | None = None
    nats_inbox_prefix: str = "_INBOX"
    nats_prefix: str = "faust"
    nats_replicas: int = 1
    session_timeout: float = 6.0
    partitions: int = 8
    data_dir: Path = field(default_factory=lambda: Path("data"))
    port: int = 8080
    ingest_token: Secret | None = None
    window_seconds: int = 60
    grace_seconds: int = 10
    update_seconds: float = 0.0
    log_level: str = "info"
    events_limits: Limits = Limits(7 * DAY)
    public_limits: PublicLimits = PublicLimits()
    changelog_max_bytes: int = DEFAULT_CHANGELOG_MAX_BYTES

    @property
    def embedded_nats(self) -> bool:
        """No NATS_URL: run against a nats-server started by this program."""
        return not self.nats_urls

    def credentials(self) -> NatsCredentials:
        return NatsCredentials(
            user=self.nats_user,
            password=self.nats_password.value if self.nats_password else None,
            token=self.nats_token.value if self.nats_token else None,
            creds_file=self.nats_creds,
            tls_ca_file=self.nats_tls_ca,
            tls_cert_file=self.nats_tls_cert,
            tls_key_file=self.nats_tls_key,
        )

    def connection(self, urls: tuple[str, ...] | None = None, *, name: str = "learning-streams") -> ConnectionSettings:
        """How to reach NATS (``urls`` overrides NATS_URL, e.g. with an embedded server's)."""
        servers = urls or self.nats_urls
        if not servers:
            raise ConfigError("NATS_URL", "", "not set and no embedded server is running")
        return ConnectionSettings.from_urls(
            servers,
            credentials=self.credentials(),
            name=name,
            inbox_prefix=self.nats_inbox_prefix,
            connect_deadline=self.nats_connect_deadline,
        )

    def public_streams(self, *, update_limits: bool = True) -> PublicStreams:
        """The public streams and bucket with their limits; the processes that own the settings
        (workers, web) apply them to existing streams, readers (``update_limits=False``) do not."""
        return PublicStreams(self.nats_prefix, self.nats_replicas, self.public_limits, update_limits)

    def broker_url(self, urls: tuple[str, ...] | None = None) -> str:
        """faust's broker URL: servers plus transport options, never credentials.

        The events topic is the workers' one ordinary topic, so its limits are the transport's
        ``topic_*`` options (faust's own assignor topic takes them too).
        """
        servers = urls or self.nats_urls
        query = (
            f"prefix={self.nats_prefix}&replicas={self.nats_replicas}&session_timeout={self.session_timeout}"
            f"&connect_deadline={self.nats_connect_deadline}"
            f"&topic_retention={format_duration(self.events_limits.max_age)}"
            f"&topic_max_bytes={self.events_limits.max_bytes}"
            f"&changelog_max_bytes={self.changelog_max_bytes}"
        )
        if self.nats_inbox_prefix != "_INBOX":
            query += f"&inbox_prefix={self.nats_inbox_prefix}"
        return ";".join(f"{url}?{query}" for url in servers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        unknown = _read(env, "LOG_LEVEL", "info", str.lower)
        if unknown not in _LOG_LEVELS:
            raise ConfigError("LOG_LEVEL", unknown, f"must be one of {', '.join(_LOG_LEVELS)}")
        urls = tuple(u.strip() for u in env.get("NATS_URL", "").split(",") if u.strip())
        for url in urls:
            if "@" in url:
                raise ConfigError(
                    "NATS_URL", "<redacted>", "must not contain credentials; use NATS_USER/NATS_PASSWORD or NATS_TOKEN"
                )
            parts = urlsplit(url)
            if parts.path not in ("", "/") or "?" in url or "#" in url:
                # The transport's options come from their own settings (NATS_PREFIX,
                # SESSION_TIMEOUT, ...): a second source could disagree between processes.
                # The options are not shown: one could be a token.
                raise ConfigError(
                    "NATS_URL",
                    f"{parts.scheme}://{parts.netloc}{parts.path}?...",
                    "must name servers only (scheme://host:port), without a path or ?options",
                )
        settings = cls(
            nats_urls=urls,
            nats_connect_deadline=_read(env, "NATS_CONNECT_DEADLINE", 60.0, float, minimum=1),
            nats_user=env.get("NATS_USER") or None,
            nats_password=_secret(env, "NATS_PASSWORD"),
            nats_token=_secret(env, "NATS_TOKEN"),
            nats_creds=_existing_file(env, "NATS_CREDS"),
            nats_tls_ca=_existing_file(env, "NATS_TLS_CA"),
            nats_tls_cert=_existing_file(env, "NATS_TLS_CERT"),
            nats_tls_key=_existing_file(env, "NATS_TLS_KEY"),
            nats_inbox_prefix=_read(env, "NATS_INBOX_PREFIX", "_INBOX", str),
            nats_prefix=_read(env, "NATS_PREFIX", "faust", str),
            nats_replicas=_read(env, "NATS_REPLICAS", 1, int, allowed=(1, 3, 5)),
            session_timeout=_read(env, "SESSION_TIMEOUT", 6.0, float, minimum=1.5),
            partitions=_read(env, "PARTITIONS", 8, int, minimum=1),
            data_dir=Path(env.get("DATA_DIR") or "data"),
            port=_read(env, "PORT", 8080, int, minimum=0, maximum=65535),
            ingest_token=_secret(env, "INGEST_TOKEN"),
            window_seconds=_read(env, "METRICS_WINDOW_SECONDS", 60, int, minimum=1),
            grace_seconds=_read(env, "METRICS_GRACE_SECONDS", 10, int, minimum=0),
            update_seconds=_read(env, "METRICS_UPDATE_SECONDS", 0.0, float),
            log_level=unknown,
            events_limits=_read_limits(
                env, "EVENTS", 7 * DAY, minimum=DEDUPE_WINDOW,
                why=", the event dedupe window (a stream remembers ids only while it keeps their messages)",
            ),
            public_limits=PublicLimits(
                ingest=_read_limits(env, "INGEST", 7 * DAY),
                results=_read_limits(env, "RESULTS", 7 * DAY),
                deadletter=_read_limits(env, "DEADLETTER", 14 * DAY),
                metrics=_read_limits(env, "METRICS", 90 * DAY, age="TTL"),
            ),
            # A changelog has no age limit (its latest values are the workers' state): bytes are its
            # only bound, so -1 is not taken.
            changelog_max_bytes=_read_max_bytes(
                env, "CHANGELOG_MAX_BYTES", DEFAULT_CHANGELOG_MAX_BYTES, unlimited=False
            ),
        )
        if not math.isfinite(settings.nats_connect_deadline):
            raise ConfigError("NATS_CONNECT_DEADLINE", env["NATS_CONNECT_DEADLINE"], "must be a finite number of seconds")
        if not math.isfinite(settings.update_seconds):
            raise ConfigError("METRICS_UPDATE_SECONDS", env["METRICS_UPDATE_SECONDS"], "must be a finite number of seconds")
        if settings.update_seconds != 0 and settings.update_seconds < _MIN_UPDATE_SECONDS:
            # A shorter period would be a near-continuous loop rewriting every open window's key.
            raise ConfigError(
                "METRICS_UPDATE_SECONDS", env["METRICS_UPDATE_SECONDS"], f"must be 0 (off) or >= {_MIN_UPDATE_SECONDS}"
            )
        if settings.nats_password is not None and settings.nats_user is None:
            raise ConfigError("NATS_PASSWORD", Secret("x"), "needs NATS_USER as well")
        if (settings.nats_tls_cert is None) != (settings.nats_tls_key is None):
            raise ConfigError("NATS_TLS_CERT", settings.nats_tls_cert, "and NATS_TLS_KEY go together")
        return settings


def _read(
    env: Mapping[str, str],
    name: str,
    default: T,
    convert: Callable[[str], T],
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    allowed: tuple[Any, ...] | None = None,
    rule: str | None = None,
) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = convert(raw.strip())
    except ValueError:
        kind = getattr(convert, "__name__", "value")
        raise ConfigError(name, raw, f"is not {rule}" if rule else f"is not a valid {kind}") from None
    if allowed is not None and value not in allowed:
        raise ConfigError(name, raw, f"must be one of {', '.join(map(str, allowed))}")
    if minimum is not None and value < minimum:  # type: ignore[operator]
        raise ConfigError(name, raw, f"must be >= {minimum}")
    if maximum is not None and value > maximum:  # type: ignore[operator]
        raise ConfigError(name, raw, f"must be <= {maximum}")
    return value


def _read_limits(
    env: Mapping[str, str], stream: str, default_age: float, *, age: str = "RETENTION", minimum: float = 1.0,
    why: str = "",
) -> Limits:
    """``<stream>_RETENTION`` (or ``_TTL``) and ``<stream>_MAX_BYTES``: an age always, bytes if asked."""
    return Limits(
        _read_duration(env, f"{stream}_{age}", default_age, minimum=minimum, why=why),
        _read_max_bytes(env, f"{stream}_MAX_BYTES", UNLIMITED),
    )


def _read_duration(
    env: Mapping[str, str], name: str, default: float, *, minimum: float = 1.0, why: str = ""
) -> float:
    """A retention of at least ``minimum`` seconds (one at the least: 0 would mean forever)."""
    seconds = _read(env, name, default, parse_duration, rule=_DURATION_RULE)
    if seconds < minimum:
        raise ConfigError(name, env[name], f"must be at least {format_duration(minimum)}{why}")
    if seconds > _MAX_DURATION:
        raise ConfigError(name, env[name], f"must be at most {format_duration(_MAX_DURATION)}")
    return seconds


def _read_max_bytes(env: Mapping[str, str], name: str, default: int, *, unlimited: bool = True) -> int:
    """A byte cap of at least 1 MiB, or -1 (none) where ``unlimited``: an age bounds that stream."""
    value = _read(env, name, default, parse_size, rule=_SIZE_RULE)
    if value == UNLIMITED and not unlimited:
        raise ConfigError(name, env[name], "must be a size, not -1: it is the only bound of what it limits")
    if value != UNLIMITED and value < _MIN_MAX_BYTES:
        raise ConfigError(name, env[name], "must be -1 or at least 1M" if unlimited else "must be at least 1M")
    if value > _MAX_MAX_BYTES:
        raise ConfigError(name, env[name], "must be at most 1024T")
    return value


def _secret(env: Mapping[str, str], name: str) -> Secret | None:
    raw = env.get(name)
    return Secret(raw) if raw else None


def _existing_file(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    if not Path(raw).is_file():
        raise ConfigError(name, raw, "is not a readable file")
    return raw
