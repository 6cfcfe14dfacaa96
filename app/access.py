"""Who may use the web process: bearer tokens, and who may read which student.

Two doors, each with its own token, compared in constant time by :class:`BearerToken`:

- **ingest** (``POST /v1/events``): ``INGEST_TOKEN``, checked by :mod:`app.web.ingest`;
- **reads** (the query API, the dashboard and its event stream): ``READ_TOKEN``, or the
  deployment's own :class:`ReadAccess` named by ``READ_ACCESS``. :class:`ReadGuard` checks them
  for :mod:`app.web.routes` (the query API) and :mod:`app.dashboard.handlers`.

A leaf module of ``app``: both the web process and the dashboard use it.

Reading is decided in two steps, so a deployment can give each tenant its own tokens:

1. :meth:`ReadAccess.reader` turns the presented token into a :class:`Reader`, or None (401);
2. :meth:`Reader.may_read` says whether that reader may read one student (403 if not); the
   dashboard shows a reader only the students it may read.

The default, :class:`TokenAccess`, takes ``READ_TOKEN`` and lets it read every student. With
neither ``READ_TOKEN`` nor ``READ_ACCESS`` reads are open, as they are on a loopback address by
default; :func:`exposure_warnings` says what is open when the process listens beyond loopback.
``/healthz``, ``/readyz`` and ``/openapi.json`` are always open.

The hook's methods are called on the event loop for every read request (and, on the dashboard,
for every student shown): they must not block. Look up what they need beforehand, or cache it.
"""

from __future__ import annotations

import hmac
import importlib
import ipaddress
from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

from bridges.connection import Secret
from contract.names import is_id
from tables.errors import ConfigError

__all__ = [
    "BearerToken",
    "EVERY_STUDENT",
    "ReadAccess",
    "ReadGuard",
    "Reader",
    "TokenAccess",
    "bearer_token",
    "exposure_warnings",
    "is_loopback",
    "load_read_access",
]

class BearerToken:
    """One secret token; :meth:`matches` compares in constant time."""

    def __init__(self, secret: Secret) -> None:
        self._value = secret.value.encode("utf-8", "surrogateescape")

    def matches(self, given: str) -> bool:
        # compare_digest takes as long for any two values of one length (the length of the
        # right answer is not a secret worth more code to hide), so the answer's timing says
        # nothing about how much of a guess was right.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._value)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (the scheme in any case, RFC 7235), or None."""
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


# -- the hook ------------------------------------------------------------------------------------


@runtime_checkable
class Reader(Protocol):
    """Whoever a valid read token stands for."""

    def may_read(self, student_id: str) -> bool:
        """Whether this reader may see ``student_id``'s metrics (a valid id)."""
        ...


@runtime_checkable
class ReadAccess(Protocol):
    """Who may read: what a deployment supplies with ``READ_ACCESS=package.module:attribute``."""

    def reader(self, token: str) -> Reader | None:
        """The reader ``token`` stands for, or None when it is not a valid read token."""
        ...


class _EveryStudent:
    def may_read(self, student_id: str) -> bool:
        return True

    def __repr__(self) -> str:
        return "EVERY_STUDENT"


#: the reader of the default access, and of open reads: every student
EVERY_STUDENT: Final[Reader] = _EveryStudent()


class TokenAccess:
    """The default :class:`ReadAccess`: one token (``READ_TOKEN``) that reads every student."""

    def __init__(self, token: Secret) -> None:
        self._token = BearerToken(token)

    def reader(self, token: str) -> Reader | None:
        return EVERY_STUDENT if self._token.matches(token) else None


def load_read_access(spec: str) -> ReadAccess:
    """The object ``READ_ACCESS`` names (``package.module:attribute``), checked to be a ReadAccess.

    Raises:
        ConfigError: the module cannot be imported (or raised while it was), has no such
            attribute, or it is not a :class:`ReadAccess` instance.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the deployment's module raises: one line, exit 2
        raise ConfigError("READ_ACCESS", spec, f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ConfigError("READ_ACCESS", spec, f"{module_name} has no {attribute}")
    if isinstance(found, type) or not isinstance(found, ReadAccess):
        raise ConfigError(
            "READ_ACCESS", spec, "must name an object with a reader(token) method (an instance, not a class)"
        )
    return found


# -- the check every read request passes -------------------------------------------------------


class ReadGuard:
    """Read requests checked against a :class:`ReadAccess`, or open (``access`` None).

    The query API's routes are wrapped by :func:`app.web.routes.add_routes` (JSON refusals); the
    dashboard asks :meth:`reader` itself (HTML refusals, and its cookie as well as the header).
    """

    def __init__(self, access: ReadAccess | None) -> None:
        self._access = access

    @property
    def open(self) -> bool:
        """Anyone may read: neither READ_TOKEN nor READ_ACCESS is set."""
        return self._access is None

    def reader(self, token: str | None) -> Reader | None:
        """The reader ``token`` stands for (every student while reads are open), or None."""
        if self._access is None:
            return EVERY_STUDENT
        return self._access.reader(token) if token else None

    def refuses(self, reader: Reader, student_id: str) -> bool:
        """``reader`` may not read ``student_id``. Ids that are not ids are not refused here:
        the hook is asked about valid ids only, and the caller answers the others (422, 404)."""
        return is_id(student_id) and not reader.may_read(student_id)


# -- listening beyond loopback -------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """``host`` reaches this machine only: a loopback address, or ``localhost``. A name other than
    localhost counts as not loopback: it may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warnings(host: str, *, ingest_open: bool, reads_open: bool) -> list[str]:
    """What anyone who reaches ``host`` can do without a token, when ``host`` is not loopback."""
    if is_loopback(host):
        return []
    where = f"HOST={host} is not a loopback address, and"
    warnings = []
    if ingest_open:
        warnings.append(
            f"{where} INGEST_TOKEN is not set: anyone who reaches this web process can send events "
            "(set INGEST_TOKEN, or HOST=127.0.0.1)"
        )
    if reads_open:
        warnings.append(
            f"{where} neither READ_TOKEN nor READ_ACCESS is set: anyone who reaches this web process can "
            "read every student's metrics and open the dashboard (set READ_TOKEN, or HOST=127.0.0.1)"
        )
    return warnings
