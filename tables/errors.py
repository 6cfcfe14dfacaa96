"""The project's one exception root and its first branches.

It lives in ``tables`` because every other package may import ``tables`` and ``tables`` imports
nothing of theirs (see the layout note in ``app/__init__.py``).

Two branches are kept apart on purpose (trio's ``ClosedResourceError`` vs ``BrokenResourceError``):

- :class:`ClosedError` — *we* closed the resource; using it again is a programming error.
- :class:`BrokenError` — the *outside* broke (NATS unreachable, a stream deleted under us, a
  newer owner fenced us off, no room left to store a write); retrying or restarting may help.

Two more say what was wrong with the *data*, so the caller can route it rather than crash:
:class:`InvalidEventError` (an event; it goes to the dead-letter subject) and :class:`StateError`
(a changelog entry that the current metric definition cannot restore).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokenError",
    "ClosedError",
    "ConfigError",
    "FencedError",
    "InvalidEventError",
    "StateError",
    "StorageFull",
    "StreamsError",
]


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


class InvalidEventError(StreamsError, ValueError):
    """An event cannot be processed as given: a field it needs is missing or malformed.

    Raised before anything is applied, so the state is as if the event never arrived; the caller
    dead-letters the event with ``str(error)`` as the reason. ``field`` names the field (a dotted
    path), ``value`` is what it held (``tables.fields.MISSING`` when absent) and ``problem`` says
    what is wrong with it, e.g. ``Event field 'occurred_at' has value 'soon': not an RFC 3339 ...``.
    """

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"Event field {field!r} has value {value!r}: {problem}")


class StateError(StreamsError, ValueError):
    """A stored (changelog) state cannot be restored into the current definition.

    Typically the metric's definition changed under its changelog (another window size, other
    aggregates) or the stored value is not one this code wrote. ``key`` is the storage key.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"Stored state {key!r} cannot be restored: {problem}")


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


class StorageFull(BrokenError):
    """JetStream refused a write for lack of room; nothing of it was stored.

    A state, not a crash: the same write succeeds once there is room again (an operator raises
    the store's limit or frees space), so callers keep what they could not store and try again
    later. ``scope`` says what is full: ``"server"`` (the server's JetStream store),
    ``"account"`` (the account's JetStream limit) or ``"stream"`` (the stream written to reached
    its own byte or message cap, and refuses rather than drops). ``stream`` names that stream
    when JetStream said which, ``subject`` is where the write went and ``description`` is
    JetStream's own text.
    """

    def __init__(self, subject: str, scope: str, description: str, *, stream: str = "") -> None:
        self.subject = subject
        self.scope = scope
        self.description = description
        self.stream = stream
        where = {
            "server": "the JetStream store of the server is full",
            "account": "the account's JetStream storage limit is reached",
        }.get(scope, f"stream {stream or '?'} is at its cap")
        super().__init__(f"storage full: {where} ({description}); write to {subject} refused")
