"""A string that never shows: passwords and tokens, in settings that are logged whole.

Its own module because both :mod:`bridges.connection` (faust-free, for light clients) and
:mod:`bridges.credentials` (a faust class) hold secrets, and neither may import the other's way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Secret"]


@dataclass(frozen=True)
class Secret:
    """A string that never appears in logs, errors or reprs."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__
