"""A per-tenant read access: each token reads the students of one school.

Supplied with ``READ_ACCESS=<this module>:access`` (the tests: ``tests.apps.tenants:access``). The
tokens and their students come from the JSON file named by ``TENANTS_FILE``
(``{"<token>": ["<student_id>", ...], ...}``), read once when the web process imports this
module; without the file no token reads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path


class School:
    """A reader: the students of one school."""

    def __init__(self, students: Collection[str]) -> None:
        self._students = frozenset(students)

    def may_read(self, student_id: str) -> bool:
        return student_id in self._students


class Tenants:
    """A ``ReadAccess`` (``reader(token)``) over a mapping of token -> the school it reads."""

    def __init__(self, schools: Mapping[str, Collection[str]]) -> None:
        # Looked up by the token's digest, not the token: the lookup's timing can then tell an
        # attacker about digests only, which says nothing about any token.
        self._schools = {_digest(token): School(students) for token, students in schools.items()}

    @classmethod
    def from_file(cls, path: str | None) -> Tenants:
        return cls(json.loads(Path(path).read_text()) if path else {})

    def reader(self, token: str) -> School | None:
        return self._schools.get(_digest(token))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


access = Tenants.from_file(os.environ.get("TENANTS_FILE"))
