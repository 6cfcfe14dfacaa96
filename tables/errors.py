"""The project's one exception root and its first branches.

It lives in ``tables`` because every other package may import ``tables`` and ``tables`` imports
nothing of theirs (see the layout note in ``app/__init__.py``).

Two branches are kept apart on purpose (trio's ``ClosedResourceError`` vs ``BrokenResourceError``):

- :class:`ClosedError` — *we* closed the resource; using it again is a programming error.
- :class:`BrokenError` — the *outside* broke (NATS unreachable, a stream deleted under us, a
  newer owner fenced us off); retrying or restarting may help.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BrokenError", "ClosedError", "ConfigError", "FencedError", "StreamsError"]


class StreamsError(Exception):
    """Root of every exception this project raises on purpose."""


class ConfigError(StreamsError, ValueError):
    """A setting or argument has a value we cannot honour.

    The message names the field, the offending value and the problem, e.g.
    ``Setting 'METRICS_GRACE_SECONDS' has value '-3': must be >= 0``.
    """

    def __init__(self, field: str, value: Any, problem: str, *, kind: str = "Setting") -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{kind} {field!r} has value {value!r}: {problem}")


class ClosedError(StreamsError):
    """The resource was closed by its owner and cannot be used (or reopened)."""


class BrokenError(StreamsError):
    """Something outside the process failed: the server, the network, another worker."""


class FencedError(BrokenError):
    """A newer owner took this partition over; this worker's writes to it are refused.

    Carries what was refused so the log says which partition and which write.
    """

    def __init__(self, what: str, resource: str) -> None:
        self.what = what
        self.resource = resource
        super().__init__(f"{what} for {resource} refused: a newer owner has fenced this worker")
