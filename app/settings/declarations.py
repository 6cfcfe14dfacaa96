"""The settings of the program, each declared once as a field of :class:`Settings`.

A field made by :func:`~app.settings.kinds.setting` carries its environment variable, its
default as the environment would spell it, the kind of value it takes and its meaning; the field
default, :meth:`Settings.from_env`, ``--help`` (:func:`help_lines`) and the README's table
(:func:`markdown_table`) are derived from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from app.settings.kinds import (
    SETTING,
    Choice,
    Duration,
    ExistingFile,
    Folder,
    Host,
    Integer,
    ObjectPath,
    Seconds,
    SecretText,
    ServerUrls,
    Setting,
    Size,
    Text,
    setting,
)
from bridges.connection import ConnectionSettings, Secret
from bridges.credentials import NatsCredentials
from bridges.limits import Limits, format_duration
from bridges.public.event_sink import DEDUPE_WINDOW
from bridges.public.streams import PublicLimits, PublicStreams
from tables.errors import ConfigError

__all__ = ["SETTINGS", "Settings", "VARIABLES", "help_lines", "markdown_table"]


@dataclass(frozen=True)
class Settings:
    """Every setting of the program, in the order ``--help`` and the README list them."""

    nats_urls: tuple[str, ...] = setting(
        "NATS_URL", "", ServerUrls(),
        "the NATS servers; unset: nats://127.0.0.1:4222, where `python -m app nats` listens (the demo runs its own)",
    )
    nats_connect_deadline: float = setting(
        "NATS_CONNECT_DEADLINE", "60", Seconds(minimum=1),
        "seconds a process keeps trying to reach NATS at start before it gives up",
    )
    nats_user: str | None = setting("NATS_USER", "", Text(strip=False), "user name for NATS")
    nats_password: Secret | None = setting("NATS_PASSWORD", "", SecretText(), "password for NATS (with NATS_USER)")
    nats_token: Secret | None = setting("NATS_TOKEN", "", SecretText(), "token for NATS")
    nats_creds: str | None = setting("NATS_CREDS", "", ExistingFile(), "path of a NATS .creds file (JWT and nkey seed)")
    nats_tls_ca: str | None = setting("NATS_TLS_CA", "", ExistingFile(), "CA certificate file for TLS")
    nats_tls_cert: str | None = setting(
        "NATS_TLS_CERT", "", ExistingFile(), "client certificate file for TLS (with NATS_TLS_KEY)"
    )
    nats_tls_key: str | None = setting("NATS_TLS_KEY", "", ExistingFile(), "client key file for TLS")
    nats_inbox_prefix: str = setting(
        "NATS_INBOX_PREFIX", "_INBOX", Text(),
        "subject prefix of this process's reply inboxes (one per role with NATS permissions)",
    )
    nats_prefix: str = setting(
        "NATS_PREFIX", "faust", Text(), "prefix of every subject, stream and bucket the workers create"
    )
    nats_replicas: int = setting(
        "NATS_REPLICAS", "1", Integer(allowed=(1, 3, 5)), "JetStream replicas of streams and buckets"
    )
    session_timeout: float = setting(
        "SESSION_TIMEOUT", "6", Seconds(minimum=1.5), "seconds after which a silent worker's partitions move to others"
    )
    partitions: int = setting(
        "PARTITIONS", "8", Integer(minimum=1), "partitions of the event topic (the most worker processes per agent)"
    )
    data_dir: Path = setting(
        "DATA_DIR", "./data", Folder(), "where the embedded nats-server and the workers keep their files"
    )
    host: str = setting(
        "HOST", "127.0.0.1", Host(),
        "address the web process listens on (0.0.0.0: every interface; set INGEST_TOKEN and READ_TOKEN then)",
    )
    port: int = setting("PORT", "8080", Integer(minimum=0, maximum=65535), "HTTP port of the web process (0: any free one)")
    metrics_port: int | None = setting(
        "METRICS_PORT", "", Integer(minimum=0, maximum=65535),
        "HTTP port of a worker's /metrics, /healthz and /readyz (unset: none; 0: any free one, printed at start)",
    )
    # The doors' bounds (issue 14): how long a client may take, and how many are served at once,
    # so slow or idle connections cannot hold the web process's memory.
    http_idle_seconds: float = setting(
        "HTTP_IDLE_SECONDS", "15", Seconds(minimum=0.1),
        "seconds a connection may wait before its request's headers are complete (new, or kept alive "
        "after an answer); then it is closed",
    )
    http_body_seconds: float = setting(
        "HTTP_BODY_SECONDS", "30", Seconds(minimum=0.1),
        "seconds an upload may take to send its body; a slower one is answered 408 and closed",
    )
    ingest_concurrency: int = setting(
        "INGEST_CONCURRENCY", "16", Integer(minimum=1),
        "HTTP ingest requests served at once (each holds up to 1 MiB); more are answered 503 with Retry-After",
    )
    dashboard_streams: int = setting(
        "DASHBOARD_STREAMS", "100", Integer(minimum=1),
        "dashboard pages following live updates at once; more are answered 503 with Retry-After",
    )
    dashboard_students: int = setting(
        "DASHBOARD_STUDENTS", "20000", Integer(minimum=1),
        "students the dashboard keeps in memory; beyond it, the one quiet the longest goes",
    )
    dashboard_metric_keys: int = setting(
        "DASHBOARD_METRIC_KEYS", "20000", Integer(minimum=1),
        "keys of each metric version the dashboard's metric pages keep in memory; beyond it, the one quiet the longest goes",
    )
    ingest_token: Secret | None = setting(
        "INGEST_TOKEN", "", SecretText(), "when set, HTTP ingest requires `Authorization: Bearer <token>`"
    )
    read_token: Secret | None = setting(
        "READ_TOKEN", "", SecretText(),
        "when set, the query API and the dashboard require `Authorization: Bearer <token>` (the dashboard: once)",
    )
    read_access: str | None = setting(
        "READ_ACCESS", "", ObjectPath(),
        "who may read which student: a ReadAccess object of the deployment's (docs/operations.md), instead of READ_TOKEN",
    )
    window_seconds: int = setting(
        "METRICS_WINDOW_SECONDS", "60", Integer(minimum=1), "tumbling window size of the learning metrics, in seconds"
    )
    grace_seconds: int = setting(
        "METRICS_GRACE_SECONDS", "10", Integer(minimum=0), "how long after a window's end late events still count"
    )
    # A period under 0.1 s would be a near-continuous loop rewriting every open window's key.
    update_seconds: float = setting(
        "METRICS_UPDATE_SECONDS", "0", Seconds(minimum=0.1, zero="off"),
        "how often open windows' current values go to KV, marked `\"final\": false`",
    )
    results_from: str = setting(
        "RESULTS_FROM", "auto", Choice(("auto", "metrics", "workers")),
        "who feeds the RESULTS stream: `metrics`, the server, from each final the workers write once to the "
        "metrics bucket; `workers`, their own publishes (needed by METRICS_UPDATE_SECONDS); `auto`: `metrics` "
        "unless METRICS_UPDATE_SECONDS is set. Applies when the stream is created",
    )
    log_level: str = setting(
        "LOG_LEVEL", "info", Choice(("debug", "info", "warning", "error")), "how much the processes log"
    )
    log_format: str = setting(
        "LOG_FORMAT", "text", Choice(("text", "json")),
        "how the processes write logs: lines for people, or one JSON object per line",
    )
    # Retention (docs/operations.md has the table): durations are seconds or 30s, 15m, 12h, 7d;
    # sizes are bytes or 512M, 10G, 1T (powers of 1024), -1 for no byte limit.
    events_retention: float = setting(
        "EVENTS_RETENTION", "7d",
        Duration(
            minimum=DEDUPE_WINDOW,
            why=", the event dedupe window (a stream remembers ids only while it keeps their messages)",
        ),
        "how long the events topic keeps events (how far back a new metric can be computed)",
    )
    events_max_bytes: int = setting(
        "EVENTS_MAX_BYTES", "-1", Size(), "bytes each events topic partition keeps at most; the oldest go first"
    )
    ingest_retention: float = setting(
        "INGEST_RETENTION", "7d", Duration(), "how long events published over NATS wait in the INGEST work queue"
    )
    ingest_max_bytes: int = setting(
        "INGEST_MAX_BYTES", "-1", Size(), "bytes the INGEST work queue keeps at most; the oldest go first"
    )
    results_retention: float = setting(
        "RESULTS_RETENTION", "7d", Duration(),
        "how long the RESULTS stream keeps published results (how far back a replay reaches)",
    )
    results_max_bytes: int = setting(
        "RESULTS_MAX_BYTES", "-1", Size(), "bytes the RESULTS stream keeps at most; the oldest go first"
    )
    deadletter_retention: float = setting(
        "DEADLETTER_RETENTION", "14d", Duration(), "how long the DEADLETTER stream keeps invalid and late events"
    )
    deadletter_max_bytes: int = setting(
        "DEADLETTER_MAX_BYTES", "-1", Size(), "bytes the DEADLETTER stream keeps at most; the oldest go first"
    )
    metrics_ttl: float = setting(
        "METRICS_TTL", "90d", Duration(), "how long a window's value stays in the metrics bucket after its last write"
    )
    metrics_max_bytes: int = setting(
        "METRICS_MAX_BYTES", "-1", Size(), "bytes the metrics bucket holds at most; when full, new values are refused"
    )
    # A changelog has no age limit (its latest values are the workers' state): bytes are its only
    # bound, so -1 is not taken.
    changelog_max_bytes: int = setting(
        "CHANGELOG_MAX_BYTES", "1G", Size(unlimited=False),
        "bytes each partition of a worker's state changelog holds at most; when full, its writes are refused",
    )

    def __post_init__(self) -> None:
        """The rules between settings; each setting's own bounds are its kind's."""
        if self.nats_password is not None and self.nats_user is None:
            raise ConfigError("NATS_PASSWORD", Secret("x"), "needs NATS_USER as well")
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ConfigError("NATS_TLS_CERT", self.nats_tls_cert, "and NATS_TLS_KEY go together")
        if self.results_from == "metrics" and self.update_seconds > 0:
            raise ConfigError(
                "RESULTS_FROM", "metrics", "cannot go with METRICS_UPDATE_SECONDS: provisional values share their "
                "final's key, and the server would publish them as results; use workers (or auto)",
            )
        if self.read_access is not None and self.read_token is not None:
            # One decider of which tokens may read: a hook that wants READ_TOKEN too reads it itself.
            raise ConfigError("READ_ACCESS", self.read_access, "and READ_TOKEN exclude each other: set one")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(**{f.name: f.metadata[SETTING].read(env) for f in fields(cls)})

    @property
    def events_limits(self) -> Limits:
        """The events topic's bound (EVENTS_RETENTION, EVENTS_MAX_BYTES)."""
        return Limits(self.events_retention, self.events_max_bytes)

    @property
    def public_limits(self) -> PublicLimits:
        """The bounds of the public streams and of the metrics bucket (the ``*_RETENTION``,
        ``METRICS_TTL`` and ``*_MAX_BYTES`` settings)."""
        return PublicLimits(
            ingest=Limits(self.ingest_retention, self.ingest_max_bytes),
            results=Limits(self.results_retention, self.results_max_bytes),
            deadletter=Limits(self.deadletter_retention, self.deadletter_max_bytes),
            metrics=Limits(self.metrics_ttl, self.metrics_max_bytes),
        )

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
        return PublicStreams(
            self.nats_prefix, self.nats_replicas, self.public_limits, update_limits, republish=self.results_republished
        )

    @property
    def results_republished(self) -> bool:
        """Whether a results stream these settings create is fed by the server (``RESULTS_FROM``)."""
        return self.results_from == "metrics" or (self.results_from == "auto" and self.update_seconds == 0)

    def broker_url(self, urls: tuple[str, ...] | None = None) -> str:
        """faust's broker URL: servers plus transport options, never credentials.

        The events topic is the workers' one ordinary topic, so its limits are the transport's
        ``topic_*`` options (faust's own assignor topic takes them too).
        """
        servers = urls or self.nats_urls
        query = (
            f"prefix={self.nats_prefix}&replicas={self.nats_replicas}&session_timeout={self.session_timeout}"
            f"&connect_deadline={self.nats_connect_deadline}"
            f"&topic_retention={format_duration(self.events_retention)}"
            f"&topic_max_bytes={self.events_max_bytes}"
            f"&changelog_max_bytes={self.changelog_max_bytes}"
        )
        if self.nats_inbox_prefix != "_INBOX":
            query += f"&inbox_prefix={self.nats_inbox_prefix}"
        return ";".join(f"{url}?{query}" for url in servers)


# -- what is derived from the declarations -----------------------------------------------------

#: every setting, in the order of the fields of :class:`Settings`
SETTINGS: Final[tuple[Setting[Any], ...]] = tuple(f.metadata[SETTING] for f in fields(Settings))

#: name -> (default as shown in the docs, meaning), for the modules that read settings by name
VARIABLES: Final[Mapping[str, tuple[str, str]]] = {s.name: (s.shown_default, s.meaning) for s in SETTINGS}


def help_lines() -> str:
    """The settings as ``python -m app --help`` lists them, one a line."""
    lines = []
    for s in SETTINGS:
        facts = [f"default {s.default}" if s.default else "unset by default", s.kind.bounds]
        lines.append(f"  {s.name:<24} {s.meaning} ({'; '.join(fact for fact in facts if fact)})")
    return "\n".join(lines)


def markdown_table() -> str:
    """The settings as the README's table lists them."""
    rows = [
        f"| `{s.name}` | {f'`{s.default}`' if s.default else 'unset'} | {s.kind.bounds} | {s.meaning} |"
        for s in SETTINGS
    ]
    return "\n".join(["| variable | default | takes | meaning |", "|---|---|---|---|", *rows])
