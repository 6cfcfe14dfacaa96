"""How to reach NATS: server URLs, credentials and TLS, and a connect that retries with backoff.

Secrets (passwords, tokens, the path of a ``.creds`` file is not one but its contents are) are held
in :class:`Secret`, whose ``repr`` and ``str`` never show the value, and URLs are stripped of their
user-info before they are stored, so a settings object can be logged whole.

faust prints ``app.conf.broker`` in its start-up banner, so credentials belong in
``broker_credentials=NatsCredentials(...)`` rather than in the broker URL; a URL with user-info
still works (it is split into user/password or token here) but faust itself would print it.

This module does not load faust: a service that only reads results connects with it, and
:class:`~bridges.credentials.NatsCredentials`, a faust class, lives in :mod:`bridges.credentials`
(``bridges.connection.NatsCredentials`` still finds it, loading faust then).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

import nats
from nats.aio.client import Client

from bridges.secret import Secret
from tables.errors import BrokenError, ConfigError

if TYPE_CHECKING:
    import faust.auth

    from bridges.credentials import NatsCredentials

__all__ = [
    "ConnectionSettings",
    "NatsCredentials",
    "SCHEMES",
    "Secret",
    "connect",
    "disconnect",
    "redact_url",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"
#: the URL schemes a NATS server is reached by (tls: nats with TLS required)
SCHEMES: Final = frozenset({"nats", "tls", "ws", "wss"})


def __getattr__(name: str) -> Any:
    """``NatsCredentials``, loaded on first use: it is a faust class (see the module's docstring)."""
    if name == "NatsCredentials":
        from bridges.credentials import NatsCredentials

        return NatsCredentials
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def redact_url(url: str) -> str:
    """``nats://user:pw@host:4222`` -> ``nats://host:4222``: safe to log (even when malformed)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"  # user-info dropped


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to open a NATS connection; safe to print.

    Build it with :meth:`from_urls`, which accepts ``"nats://a:4222,nats://b:4222"``, a list of
    URLs (strings or yarl URLs, as faust passes them), credentials and TLS.
    """

    servers: tuple[str, ...] = (DEFAULT_URL,)
    user: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    #: a tls:// URL asks for TLS even when no CA or context is given (system trust store)
    tls_required: bool = False
    name: str = "learning-streams"
    # Initial connect: how long to keep retrying before giving up with a clear error.
    connect_deadline: float = 60.0
    # Once connected, reconnect forever (a worker should ride out a NATS restart).
    reconnect_wait: float = 1.0
    #: subject prefix of this client's reply inboxes (``_INBOX`` by default); a role of its own
    #: lets server permissions give each user only its own replies (see docs/operations.md)
    inbox_prefix: str = "_INBOX"

    def __post_init__(self) -> None:
        _inbox_prefix(self.inbox_prefix)

    @classmethod
    def from_urls(
        cls,
        urls: str | Iterable[Any],
        *,
        credentials: NatsCredentials | faust.auth.Credentials | ssl.SSLContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **overrides: Any,
    ) -> ConnectionSettings:
        raw = _split_urls(urls)
        if not raw:
            raise ConfigError("NATS_URL", "", "at least one server URL is needed")
        servers: list[str] = []
        found: dict[str, Any] = {}
        for url in raw:
            parts = urlsplit(url)
            try:
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ConfigError("NATS_URL", redact_url(url), "has an invalid port") from None
            if parts.scheme not in SCHEMES:
                raise ConfigError(
                    "NATS_URL", redact_url(url), f"scheme must be one of {sorted(SCHEMES)}"
                )
            if not parts.hostname:
                raise ConfigError("NATS_URL", redact_url(url), "has no host")
            scheme = "nats" if parts.scheme == "tls" else parts.scheme
            servers.append(redact_url(f"{scheme}://{parts.netloc}"))
            if parts.scheme == "tls":
                found.setdefault("tls_required", True)
            if parts.username and parts.password is not None:
                found.setdefault("user", unquote(parts.username))
                found.setdefault("password", Secret(unquote(parts.password)))
            elif parts.username:
                found.setdefault("token", Secret(unquote(parts.username)))
            for key, values in parse_qs(parts.query).items():
                if key in {"creds", "tls_ca", "tls_cert", "tls_key"}:
                    found.setdefault(key, values[-1])
                elif key == "connect_deadline":
                    found.setdefault(key, _positive_float(key, values[-1]))
                elif key == "inbox_prefix":
                    found.setdefault(key, _inbox_prefix(values[-1]))
        settings = cls(
            servers=tuple(servers),
            user=found.get("user"),
            password=found.get("password"),
            token=found.get("token"),
            creds_file=found.get("creds"),
            tls_ca_file=found.get("tls_ca"),
            tls_cert_file=found.get("tls_cert"),
            tls_key_file=found.get("tls_key"),
            ssl_context=ssl_context,
            tls_required=bool(found.get("tls_required")),
        )
        if "connect_deadline" in found:
            settings = replace(settings, connect_deadline=found["connect_deadline"])
        if "inbox_prefix" in found:
            settings = replace(settings, inbox_prefix=found["inbox_prefix"])
        settings = settings.with_credentials(credentials)
        return replace(settings, **overrides) if overrides else settings

    def with_credentials(
        self, credentials: NatsCredentials | faust.auth.Credentials | ssl.SSLContext | None
    ) -> ConnectionSettings:
        """Merge faust ``broker_credentials`` (ours, faust's SASL/SSL ones, or an SSLContext)."""
        if credentials is None:
            return self
        if isinstance(credentials, ssl.SSLContext):
            return replace(self, ssl_context=credentials)
        # Anything else is a faust credentials object, so faust is loaded already: reading it here
        # costs nothing more, and a client that passes none never loads faust.
        from bridges.credentials import credential_fields

        return replace(self, **credential_fields(credentials))

    @property
    def uses_tls(self) -> bool:
        return bool(self.ssl_context or self.tls_ca_file or self.tls_cert_file or self.tls_required)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context to connect with, built once (it loads the certificate files)."""
        return self._built_tls_context

    @cached_property
    def _built_tls_context(self) -> ssl.SSLContext | None:
        if self.ssl_context is not None:
            return self.ssl_context
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        if self.tls_cert_file and self.tls_key_file:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return context

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.aio.client.Client.connect`` (secrets included)."""
        options: dict[str, Any] = {"servers": list(self.servers), "name": self.name}
        if self.inbox_prefix != "_INBOX":
            options["inbox_prefix"] = self.inbox_prefix
        if self.user is not None:
            options["user"] = self.user
        if self.password is not None:
            options["password"] = self.password.value
        if self.token is not None:
            options["token"] = self.token.value
        if self.creds_file is not None:
            options["user_credentials"] = self.creds_file
        tls = self.tls_context()
        if tls is not None:
            options["tls"] = tls
        return options

    def __repr__(self) -> str:
        auth = [f"user={self.user!r}"] if self.user else []
        auth += [name for name in ("password", "token") if getattr(self, name) is not None]
        if self.creds_file:
            auth.append(f"creds_file={self.creds_file!r}")
        if self.uses_tls:
            auth.append("tls")
        return f"<ConnectionSettings servers={list(self.servers)} {' '.join(auth) or 'no-auth'}>"


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, raw, "must be a number of seconds", kind="Broker option") from None
    if value <= 0:
        raise ConfigError(name, raw, "must be > 0", kind="Broker option")
    return value


_INBOX_PREFIX = re.compile(r"[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*")


def _inbox_prefix(raw: str) -> str:
    """A subject prefix for reply inboxes: literal tokens only (no wildcards, no empty token)."""
    if not _INBOX_PREFIX.fullmatch(raw):
        raise ConfigError("inbox_prefix", raw, "must be subject tokens of A-Z a-z 0-9 _ $ - joined by dots")
    return raw


def _split_urls(urls: str | Iterable[Any]) -> list[str]:
    items: Sequence[Any] = [urls] if isinstance(urls, str) else list(urls)
    out: list[str] = []
    for item in items:
        for piece in str(item).replace(";", ",").split(","):
            piece = piece.strip()
            if piece:
                out.append(piece)
    return out


async def connect(
    settings: ConnectionSettings,
    *,
    name: str | None = None,
    on_reconnected: Any = None,
    on_disconnected: Any = None,
) -> Client:
    """Open a connection, retrying with exponential backoff until ``connect_deadline``.

    While connecting, each failure is logged once in one line that names the servers (never the
    credentials). After the first success the client reconnects forever on its own.

    Raises:
        BrokenError: NATS stayed unreachable (or refused our credentials) past the deadline.
    """
    client = nats.NATS()
    servers = ", ".join(settings.servers)
    connected = False
    attempt = 0
    last_error: BaseException | None = None
    backoff_cap = 5.0

    async def error_cb(exc: Exception) -> None:
        nonlocal attempt, last_error
        last_error = exc
        if not connected:
            attempt += 1
            wait = client.options["reconnect_time_wait"]
            log.warning(
                "NATS not reachable at %s (attempt %d): %s; retrying in %.1fs",
                servers, attempt, _describe(exc), wait,
            )
            # nats-py waits a fixed reconnect_time_wait between attempts; widen it ourselves.
            client.options["reconnect_time_wait"] = min(wait * 2, backoff_cap)
        else:
            log.warning("NATS connection error (%s): %s", servers, _describe(exc))

    async def disconnected_cb() -> None:
        if connected and not (client.is_closed or client.is_draining):
            log.warning("NATS disconnected from %s; reconnecting", servers)
            if on_disconnected is not None:
                await on_disconnected()

    async def reconnected_cb() -> None:
        log.info("NATS reconnected to %s", redact_url(str(client.connected_url.geturl()))
                 if client.connected_url else servers)
        if on_reconnected is not None:
            await on_reconnected()

    options = settings.connect_options()
    if name:
        options["name"] = name
    try:
        await asyncio.wait_for(
            client.connect(
                **options,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,  # type: ignore[arg-type]  # nats-py annotates int; takes seconds
                connect_timeout=2,
                # The default 2 MiB would stall pipelined publishing during a short reconnect.
                pending_size=64 * 1024 * 1024,
            ),
            timeout=settings.connect_deadline,
        )
    except Exception as exc:  # noqa: BLE001 - reported as BrokenError below, with the cause
        await _close_quietly(client)
        reason = _describe(last_error or exc)
        raise BrokenError(
            f"cannot connect to NATS at {servers} within {settings.connect_deadline:.0f}s: {reason}"
        ) from None
    connected = True
    client.options["reconnect_time_wait"] = settings.reconnect_wait
    return client


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def disconnect(client: Client) -> None:
    """Drain ``client`` (its subscriptions finish, its buffer is flushed), else close it.

    Never raises: while the server is down draining is refused and closing fails flushing the
    reconnect buffer, and a process that is stopping must still stop. What could not be sent is
    lost either way, so it is logged, not raised.
    """
    try:
        await client.drain()
    except Exception as exc:  # noqa: BLE001 - closing anyway
        log.debug("draining the NATS connection failed: %s", _describe(exc))
        try:
            await client.close()
        except Exception as close_exc:  # noqa: BLE001 - see the docstring
            log.warning("closing the NATS connection failed: %s", _describe(close_exc))


async def _close_quietly(client: Client) -> None:
    try:
        await client.close()
    except Exception:
        log.debug("closing a failed NATS client raised", exc_info=True)
