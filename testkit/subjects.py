"""NATS subject matching, for tests that check which subjects a filter or a stream covers."""

from __future__ import annotations

__all__ = ["subject_matches"]


def subject_matches(pattern: str, subject: str) -> bool:
    """True when ``subject`` matches ``pattern``: ``*`` is one token, a last ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(have) == len(want)
