"""Storage full: telling JetStream's "no room" answers apart, and the state they put a process in.

JetStream refuses a write it has no room for with an API error, and this is the one place that
reads those errors (checked against nats-server 2.15.1):

======  ====  ==============================================  ===========================================
code    HTTP  description                                     when
======  ====  ==============================================  ===========================================
10023   503   ``insufficient resources``                      the server's store (``max_file_store``,
                                                              or ``max_mem_store``) is used up
10002   400   ``resource limits exceeded for account``        the account's JetStream storage limit
10077   503   ``maximum bytes exceeded``,                     a stream (or KV bucket) with discard
              ``maximum messages exceeded``                   policy "new" at its own cap
======  ====  ==============================================  ===========================================

(``10047 insufficient storage resources available`` is another thing: a stream *created* or
*updated* whose byte cap does not fit in what the store can still reserve; ``ensure_stream``
reports it.) 10023 carries HTTP status 503, which elsewhere means "try again in a moment" (a
stream leader being elected): a full store is not that, and a writer that resends for as long as
it lasts holds its caller up for nothing. So :func:`storage_full` turns each of these answers
into a :class:`~tables.errors.StorageFull`, which writers fail with at once; the caller keeps
what it could not store and tries again later.

While the store is full, the server keeps every message, even those whose TTL ran out (a KV
lease's delete marker is a write too), and serves reads as usual; once there is room, the
expired ones go.

:class:`StorageState` is a process's view of it: entered on the first refusal, left once a write
goes through again, each logged once, with how long it lasted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Final

from nats.aio.client import Client
from nats.errors import Error as NatsError

from tables.errors import BrokenError, StorageFull

__all__ = ["PROBE_HEADERS", "StorageState", "probe_room", "storage_full", "storage_full_from"]

log = logging.getLogger(__name__)

_SERVER_FULL: Final = 10023
_ACCOUNT_FULL: Final = 10002
_STORE_FAILED: Final = 10077
#: the 10077 descriptions that mean the stream is at its own cap (others are I/O failures)
_AT_CAP: Final = ("maximum bytes exceeded", "maximum messages exceeded")

#: Headers of a write that tells whether a stream has room without storing anything: JetStream
#: checks that it has room before it validates a message's TTL, and refuses TTLs under a
#: second, so this write is refused either way, with "insufficient resources" (still full) or
#: with "invalid per-message TTL" (room again). tests/integration/bridges/test_storage.py holds
#: a real server to that order.
PROBE_HEADERS: Final = {"Nats-TTL": "500ms"}


def storage_full(err_code: int | None, description: str | None, subject: str, *, stream: str = "") -> StorageFull | None:
    """The :class:`StorageFull` a JetStream error answer means, or None when it means something else.

    ``subject`` is where the refused write went; ``stream`` the stream the answer names, if any.
    """
    text = description or ""
    if err_code == _SERVER_FULL:
        return StorageFull(subject, "server", text or "insufficient resources", stream=stream)
    if err_code == _ACCOUNT_FULL:
        return StorageFull(subject, "account", text or "resource limits exceeded for account", stream=stream)
    if err_code == _STORE_FAILED and text.strip().lower() in _AT_CAP:
        return StorageFull(subject, "stream", text, stream=stream)
    return None


def storage_full_from(exc: BaseException, subject: str) -> StorageFull | None:
    """:func:`storage_full` for an error nats-py raised (``nats.js.errors.APIError``), or None."""
    err_code = getattr(exc, "err_code", None)
    if not isinstance(err_code, int):
        return None
    stream = getattr(exc, "stream", None)
    return storage_full(err_code, getattr(exc, "description", None), subject, stream=stream if isinstance(stream, str) else "")


async def probe_room(client: Client, subject: str, *, timeout: float = 1.0) -> StorageFull | None:
    """Whether a write to ``subject`` is refused for lack of room now: the refusal, or None.

    Stores nothing (see :data:`PROBE_HEADERS`). Raises :class:`BrokenError` when the stream
    does not answer.
    """
    try:
        reply = await client.request(subject, b"", timeout=timeout, headers=PROBE_HEADERS)
    except (NatsError, TimeoutError) as exc:
        raise BrokenError(f"probing {subject} for room: no answer ({exc or type(exc).__name__})") from None
    try:
        answer = json.loads(reply.data)
    except ValueError:
        return None
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        log.warning("probing %s for room stored an empty message (%r): this server does not check TTLs", subject, answer)
        return None
    return storage_full(error.get("err_code"), error.get("description"), subject, stream=str(answer.get("stream") or ""))


class StorageState:
    """Whether this process's writes are refused for lack of room, and since when.

    Per resource (the subject, or the part of the process, whose write was refused): the state
    is entered with the first refusal and left when the last refused resource has stored a write
    again. Entering is logged as an error, leaving as a warning with how long it lasted; the
    refusals in between are only counted.

    Args:
        what: what this process is, for the log (``"ingest"``, ``"worker progression"``).
        consequence: what the process does meanwhile, for the log line that enters the state.
        clock: seconds, for how long it lasted (monotonic).
    """

    def __init__(self, what: str, consequence: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._consequence = consequence
        self._clock = clock
        self._refused: dict[str, StorageFull] = {}
        self._since: float | None = None
        #: refusals since the state was entered
        self.refusals = 0

    @property
    def full(self) -> bool:
        return bool(self._refused)

    @property
    def error(self) -> StorageFull | None:
        """The latest refusal while full."""
        return next(reversed(self._refused.values()), None)

    @property
    def resources(self) -> list[str]:
        """What was refused and has not stored a write since."""
        return list(self._refused)

    def seconds(self) -> float:
        """How long the state has lasted (0 when not full)."""
        return 0.0 if self._since is None else self._clock() - self._since

    def refused(self, error: StorageFull, resource: str | None = None) -> None:
        """A write of ``resource`` (the error's subject when None) was refused for lack of room."""
        self.refusals += 1
        entering = not self._refused
        key = resource or error.subject
        self._refused.pop(key, None)
        self._refused[key] = error
        if entering:
            self._since = self._clock()
            log.error("%s: %s; %s until there is room again", self._what, error, self._consequence)

    def stored(self, resource: str) -> None:
        """A write of ``resource`` went through: it has room again."""
        if self._refused.pop(resource, None) is not None and not self._refused:
            self._leave()

    def clear(self) -> None:
        """Writes go through again, whatever was refused before."""
        if self._refused:
            self._refused.clear()
            self._leave()

    def _leave(self) -> None:
        log.warning(
            "%s: storage has room again after %.1fs (writes refused meanwhile: %d); resuming",
            self._what, self.seconds(), self.refusals,
        )
        self._since = None
        self.refusals = 0
