"""Decentralised NATS auth for tests: an operator, an account with JetStream, users' ``.creds`` files.

This is what ``nsc`` produces for a real deployment, minted here with nkeys so the tests need no
further tool: JWTs (v2 claims, ``ed25519-nkey``) signed by the operator for the account and by the
account for each user, a server configuration that trusts the operator and preloads the account,
and ``.creds`` files in the format nats-py (and every NATS client) reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nkeys

__all__ = ["Operator"]

_UNLIMITED = -1


def _keypair(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(subject: nkeys.KeyPair, name: str, nats: dict[str, Any], signer: nkeys.KeyPair) -> str:
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": signer.public_key.decode(),
        "name": name,
        "sub": subject.public_key.decode(),
        "nats": {**nats, "version": 2},
    }
    # The JWT id is a hash of the claims (base32, as the reference library does).
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims).encode()).digest()).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = signer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{_b64(signature)}"


@dataclass
class Operator:
    """An operator and one account ``name``; :meth:`user_creds` writes a user's ``.creds`` file."""

    name: str = "TEST"
    account_name: str = "LEARNING"
    _operator: nkeys.KeyPair = field(default_factory=lambda: _keypair(nkeys.PREFIX_BYTE_OPERATOR))
    _account: nkeys.KeyPair = field(default_factory=lambda: _keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    #: JetStream needs a system account for its internal subscriptions
    _system: nkeys.KeyPair = field(default_factory=lambda: _keypair(nkeys.PREFIX_BYTE_ACCOUNT))

    @property
    def account_public_key(self) -> str:
        return str(self._account.public_key.decode())

    def server_config(self) -> str:
        """nats-server configuration: trust this operator, know its accounts (memory resolver)."""
        system = self._system.public_key.decode()
        operator_jwt = _jwt(
            self._operator, self.name, {"type": "operator", "system_account": system}, self._operator
        )
        system_jwt = _jwt(self._system, "SYS", {"type": "account"}, self._operator)
        limits = {
            "subs": _UNLIMITED, "data": _UNLIMITED, "payload": _UNLIMITED, "imports": _UNLIMITED,
            "exports": _UNLIMITED, "wildcards": True, "conn": _UNLIMITED, "leaf": _UNLIMITED,
            # JetStream is enabled for an account by giving it storage.
            "mem_storage": _UNLIMITED, "disk_storage": _UNLIMITED,
            "streams": _UNLIMITED, "consumer": _UNLIMITED,
        }
        account_jwt = _jwt(
            self._account,
            self.account_name,
            {"type": "account", "limits": limits, "default_permissions": {"pub": {}, "sub": {}}},
            self._operator,
        )
        return (
            f'operator: "{operator_jwt}"\n'
            "resolver: MEMORY\n"
            f"system_account: {system}\n"
            "resolver_preload: {\n"
            f'  {self.account_public_key}: "{account_jwt}"\n'
            f'  {system}: "{system_jwt}"\n'
            "}\n"
        )

    def user_creds(self, directory: Path, user: str, *, signed_by: Operator | None = None) -> Path:
        """A ``.creds`` file for ``user`` of the account (or of ``signed_by``'s, which this
        operator's server does not know: a credential that must be refused)."""
        account = (signed_by or self)._account
        keys = _keypair(nkeys.PREFIX_BYTE_USER)
        user_jwt = _jwt(
            keys, user, {"type": "user", "pub": {}, "sub": {}, "subs": _UNLIMITED,
                         "data": _UNLIMITED, "payload": _UNLIMITED}, account,
        )
        path = directory / f"{user}.creds"
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{keys.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path

    @staticmethod
    def seed_of(creds: Path) -> str:
        """The user's nkey seed in a ``.creds`` file: the secret that must never be logged."""
        lines = creds.read_text().splitlines()
        return lines[lines.index("-----BEGIN USER NKEY SEED-----") + 1]
