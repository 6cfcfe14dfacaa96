"""Who may use the web process: bearer tokens, compared in constant time.

``INGEST_TOKEN`` guards ``POST /v1/events`` (:mod:`app.web.ingest`). A leaf module of ``app``:
every part of the web process that checks a token uses this one check.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from bridges.connection import Secret

__all__ = ["BearerToken", "bearer_token"]


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
