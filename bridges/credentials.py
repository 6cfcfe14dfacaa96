"""NATS credentials for faust: ``faust.App(broker_credentials=NatsCredentials(...))``.

faust accepts only its own ``Credentials`` classes there, so :class:`NatsCredentials` is one, and
importing this module loads faust (and aiokafka, which ``faust.auth`` imports). That is why it is
not part of :mod:`bridges.connection`: a service that only reads results connects with
:class:`~bridges.connection.ConnectionSettings` and never loads faust. Credentials passed to
:meth:`ConnectionSettings.with_credentials` are read here; being faust objects, faust is loaded
by then anyway.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust.auth

from bridges.secret import Secret
from tables.errors import ConfigError

__all__ = ["NatsCredentials", "credential_fields"]


class NatsCredentials(faust.auth.Credentials):
    """NATS credentials for ``faust.App(broker_credentials=...)``.

    Any of: user and password, a token, a ``.creds`` file (JWT + nkey seed), and TLS (CA file,
    client certificate and key, or a ready ``ssl.SSLContext``).
    """

    def __init__(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds_file: str | None = None,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if password is not None and user is None:
            raise ConfigError("password", Secret(password), "a password needs a user", kind="Credential")
        if (tls_cert_file is None) != (tls_key_file is None):
            raise ConfigError(
                "tls_cert_file" if tls_cert_file is None else "tls_key_file",
                None,
                "a client certificate and its key go together",
                kind="Credential",
            )
        self.user = user
        self.password = Secret(password) if password is not None else None
        self.token = Secret(token) if token is not None else None
        self.creds_file = creds_file
        self.tls_ca_file = tls_ca_file
        self.tls_cert_file = tls_cert_file
        self.tls_key_file = tls_key_file
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        shown = [f"user={self.user!r}"] if self.user else []
        shown += [name for name in ("password", "token") if getattr(self, name) is not None]
        if self.creds_file:
            shown.append(f"creds_file={self.creds_file!r}")
        if self.tls_ca_file or self.tls_cert_file or self.ssl_context:
            shown.append("tls")
        return f"<NatsCredentials {' '.join(shown) or 'none'}>"


def credential_fields(credentials: object) -> dict[str, Any]:
    """The :class:`~bridges.connection.ConnectionSettings` fields ``credentials`` set, by name:
    ours, or faust's SASL (user/password) and SSL ones. Fields they leave unset are left out, so
    the settings keep their own (e.g. from the URL)."""
    if isinstance(credentials, NatsCredentials):
        fields = {
            name: getattr(credentials, name)
            for name in (
                "user", "password", "token", "creds_file", "tls_ca_file", "tls_cert_file", "tls_key_file",
                "ssl_context",
            )
        }
    elif isinstance(credentials, faust.auth.SASLCredentials):
        fields = {
            "user": credentials.username,
            "password": Secret(credentials.password) if credentials.password else None,
            "ssl_context": credentials.ssl_context,
        }
    elif isinstance(credentials, faust.auth.SSLCredentials):
        fields = {"ssl_context": credentials.context}
    else:
        raise ConfigError(
            "broker_credentials",
            type(credentials).__name__,
            "the nats:// transport understands NatsCredentials, SASLCredentials (user/password) "
            "and SSLCredentials",
        )
    return {name: value for name, value in fields.items() if value}
