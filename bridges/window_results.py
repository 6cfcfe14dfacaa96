"""Where closed windows and rejected events go: the ``metrics`` KV bucket, result subjects, dead letters.

A window's result is written **once**: a compare-and-set KV write, so the value of a closed window
never changes. A replay after a crash that closes the same window again finds the key taken,
compares, and keeps the first value — logging an error if they differ, which only a
non-deterministic aggregate could cause. The same JSON goes out on ``results.<metric>.<id>``
with ``Nats-Msg-Id`` = the KV key, so a replay does not publish it twice within the duplicate
window; dead letters carry a caller-chosen id for the same reason.

Provisional values (``METRICS_UPDATE_SECONDS``): the current value of an open window, marked
``"final": false``, may be written under the same key before the final one. Every KV write states
the revision it replaces (``Nats-Expected-Last-Subject-Sequence``; 0: the key must not exist), and
a revision is only ever stated when the value at it was seen to be provisional:

- A provisional write states the revision its previous provisional write of the key got (from the
  ack), or 0. When refused it is dropped, and the key is read once: a provisional value there (the
  partition's previous owner wrote it, or an ack was lost) gives the revision to replace, and the
  refused value is sent once more over it; a final value there ends provisional writes of the key.
  So a provisional value only ever creates a key or replaces a provisional one, never a final one.
- The final write states the revision of this worker's last provisional write of the key, or 0.
  When refused, the key is read: a provisional value is replaced by a write stating its revision
  (a few attempts: an old owner not yet fenced may still be writing), and a final value is
  compared as above. Once final, no write states a revision at or after the final one, so no
  provisional value can follow it.
- At most one provisional write of a key is in flight (a newer value waits, only the newest), and
  the final write waits for the one in flight: it must state the revision that write gets, and
  must not race it to the stream (a clustered stream refuses a second write stating the same
  subject sequence while the first is being proposed). A provisional write is therefore never
  behind the final one of its key in the stream.

Provisional writes are best effort: they never fail a caller, and what they leave undone the next
value or the final write takes care of.

Everything goes through the transport session's pipelined publisher: the caller gets an
awaitable per write and decides when to wait (the windowed table waits before it flushes its
state, so a window never leaves the state before its result is stored).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from bridges.envelope import HDR_MSG_ID
from bridges.public_streams import METRICS_BUCKET, PublicStreams
from bridges.publisher import Ack, ExpectationFailed
from bridges.session import TransportSession
from tables.errors import BrokenError, ClosedError

__all__ = ["WindowResults"]

log = logging.getLogger(__name__)

_EXPECTED: Final = "Nats-Expected-Last-Subject-Sequence"
#: reads and compare-and-set writes a final write tries over provisional values before failing
#: (which fails the flush: the window is closed again by whoever replays it)
_FINAL_ATTEMPTS: Final = 5
#: keys whose provisional revision is remembered; forgetting one costs a refused write and a read
_TRACKED_KEYS: Final = 100_000


@dataclass(eq=False)
class _Provisional:
    """This worker's provisional writes of one key."""

    #: revision of the provisional value this worker last saw under the key (its own write's, or
    #: one read after a refusal); 0 when none is known: the next write expects no key
    revision: int = 0
    #: done when no write of the key is in flight any more (None: none is)
    busy: asyncio.Future[None] | None = None
    #: follows the write in flight to its outcome, then sends ``queued``
    task: asyncio.Task[None] | None = None
    #: the newest value waiting for the write in flight
    queued: bytes | None = None
    #: the window is final (written by us now, or found written): nothing more is sent
    final: bool = False


@dataclass(frozen=True, slots=True)
class _Stored:
    revision: int
    value: bytes

    @property
    def provisional(self) -> bool:
        try:
            document = json.loads(self.value)
        except ValueError:
            return False
        return isinstance(document, dict) and document.get("final") is False


class WindowResults:
    """The ``ResultWriter`` of ``agents.context`` over a worker's transport session."""

    def __init__(self, session: TransportSession, streams: PublicStreams) -> None:
        self._session = session
        self._streams = streams
        self._kv: KeyValue | None = None
        self._open = False
        #: per KV key, least recently written first (the bound forgets from there)
        self._provisional: dict[str, _Provisional] = {}

    async def start(self) -> None:
        if self._open:
            return
        await self._session.acquire()
        js = self._session.js
        await self._streams.ensure_results(js)
        await self._streams.ensure_deadletter(js)
        self._kv = await self._streams.ensure_metrics_bucket(js)
        self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            # Provisional values still to be sent are not worth waiting for on the way out.
            tasks = [state.task for state in self._provisional.values() if state.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._provisional.clear()
            await self._session.publisher.flush(timeout=30)
            await self._session.release()

    # -- final results --------------------------------------------------------------------

    async def write_result(self, kv_key: str, subject: str, payload: bytes) -> Awaitable[None]:
        self._require_open()
        state = self._provisional.pop(kv_key, None)
        if state is None:
            return await self._write_final(kv_key, subject, payload, revision=0)
        state.final = True
        state.queued = None
        if state.busy is None:
            return await self._write_final(kv_key, subject, payload, revision=state.revision)
        return asyncio.ensure_future(self._write_final_after(state.busy, state, kv_key, subject, payload))

    async def _write_final(self, kv_key: str, subject: str, payload: bytes, *, revision: int) -> asyncio.Future[None]:
        publisher = self._require_open().publisher
        stored = await publisher.publish(_kv_subject(kv_key), payload, {_EXPECTED: str(revision)})
        published = await publisher.publish(subject, payload, {HDR_MSG_ID: f"result:{kv_key}"})
        return asyncio.ensure_future(self._settle(kv_key, payload, stored, published))

    async def _write_final_after(
        self, provisional: asyncio.Future[None], state: _Provisional, kv_key: str, subject: str, payload: bytes
    ) -> None:
        await asyncio.wait([provisional])  # it never fails; what it learnt is in state.revision
        await (await self._write_final(kv_key, subject, payload, revision=state.revision))

    async def _settle(
        self, kv_key: str, payload: bytes, stored: asyncio.Future, published: asyncio.Future
    ) -> None:
        try:
            await stored
        except ExpectationFailed:
            await self._replace_unexpected(kv_key, payload)
        await published

    async def _replace_unexpected(self, kv_key: str, payload: bytes) -> None:
        """The final write found the key at another revision than it stated: see what is there."""
        for attempt in range(_FINAL_ATTEMPTS):
            if attempt:
                # Give the other writer's burst, or a replica behind the leader answering the
                # read, a moment to settle.
                await asyncio.sleep(0.05 * attempt)
            stored = await self._read(kv_key)
            if stored is None or not stored.provisional:
                self._compare_existing(kv_key, payload, stored)
                return
            # A provisional value this worker did not know of: the partition's previous owner
            # wrote it, or the ack of our own got lost. The final value replaces it.
            log.debug("window %s: replacing the provisional value at revision %d", kv_key, stored.revision)
            publisher = self._require_open().publisher
            try:
                await (await publisher.publish(_kv_subject(kv_key), payload, {_EXPECTED: str(stored.revision)}))
            except ExpectationFailed:
                continue  # written again since the read: read once more
            return
        raise BrokenError(
            f"window {kv_key}: the final value was refused {_FINAL_ATTEMPTS} times, "
            "each time over a newer provisional value"
        )

    def _compare_existing(self, kv_key: str, payload: bytes, stored: _Stored | None) -> None:
        existing = stored.value if stored is not None else None
        try:
            same = existing is not None and json.loads(existing) == json.loads(payload)
        except ValueError:
            same = False
        if not same:
            log.error(
                "window %s was already final with another value; keeping the first.\n"
                " stored: %s\n computed now: %s",
                kv_key, existing, payload,
            )

    # -- provisional values ---------------------------------------------------------------

    async def write_provisional(self, kv_key: str, payload: bytes) -> Awaitable[None]:
        """Write the current value of an open window (``"final": false``), best effort.

        Returns once the write is under way, or waits behind the write of the key in flight (only
        the newest value waits). The awaitable completes when no write of the key is in flight
        any more — this value, or a newer one, stored or dropped; it never fails.
        """
        publisher = self._require_open().publisher
        state = self._provisional.pop(kv_key, None)
        if state is None:
            self._forget_least_recent()
            state = _Provisional()
        self._provisional[kv_key] = state  # now the most recently written
        if state.final:
            return _settled()
        if state.busy is not None:
            state.queued = payload
            return state.busy
        busy = state.busy = asyncio.get_running_loop().create_future()
        try:
            sent = await publisher.publish(_kv_subject(kv_key), payload, {_EXPECTED: str(state.revision)})
        except BaseException:
            state.busy = None
            busy.set_result(None)
            raise
        state.task = asyncio.create_task(
            self._follow_provisional(kv_key, state, payload, sent), name=f"provisional:{kv_key}"
        )
        return busy

    def _forget_least_recent(self) -> None:
        """Keep the memory bounded (e.g. keys of partitions this worker gave up)."""
        if len(self._provisional) < _TRACKED_KEYS:
            return
        for kv_key, state in self._provisional.items():
            if state.busy is None:
                del self._provisional[kv_key]
                return

    async def _follow_provisional(
        self, kv_key: str, state: _Provisional, payload: bytes, sent: asyncio.Future[Ack]
    ) -> None:
        """Learn from the outcome of the write in flight, then send the value waiting, if any."""
        resent = False
        try:
            while True:
                try:
                    state.revision = (await sent).seq
                except ExpectationFailed:
                    stored = await self._read_quietly(kv_key)
                    log.debug("provisional value of %s refused; the key holds %s", kv_key, stored)
                    if stored is not None and stored.provisional:
                        state.revision = stored.revision
                        if not resent and state.queued is None:
                            state.queued, resent = payload, True  # once more, over the value found
                    elif stored is not None:
                        state.final = True  # another owner closed the window: we are behind
                    else:
                        state.revision = 0
                except Exception as exc:  # noqa: BLE001 - best effort: NATS away, publisher closed
                    # The outcome is unknown: expect no key next time, and learn from the refusal.
                    log.debug("provisional value of %s not written: %s", kv_key, exc)
                    state.revision = 0
                if state.queued is None or state.final:
                    return
                payload, state.queued = state.queued, None
                try:
                    sent = await self._require_open().publisher.publish(
                        _kv_subject(kv_key), payload, {_EXPECTED: str(state.revision)}
                    )
                except Exception as exc:  # noqa: BLE001 - best effort: the writer is closing
                    log.debug("provisional value of %s not sent: %s", kv_key, exc)
                    return
        finally:
            busy, state.busy, state.task = state.busy, None, None
            if busy is not None:
                busy.set_result(None)

    async def _read_quietly(self, kv_key: str) -> _Stored | None:
        try:
            return await self._read(kv_key)
        except Exception as exc:  # noqa: BLE001 - best effort; the next refusal reads again
            log.debug("reading %s after a refused provisional value failed: %s", kv_key, exc)
            return None

    async def _read(self, kv_key: str) -> _Stored | None:
        if self._kv is None:
            raise ClosedError("the window results writer is not started")
        try:
            entry = await self._kv.get(kv_key)
        except KeyNotFoundError:
            return None
        return _Stored(entry.revision or 0, entry.value or b"")

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letter(
        self, subject: str, payload: bytes, *, reason: str, msg_id: str
    ) -> Awaitable[None]:
        # Header values are one line of ASCII; a reason quoting odd input is made to fit.
        safe_reason = reason.encode("ascii", "backslashreplace").decode().replace("\r", " ").replace("\n", " ")
        future = await self._require_open().publisher.publish(
            subject, payload, {HDR_MSG_ID: msg_id, "Reason": safe_reason[:1000]}
        )
        return future

    def _require_open(self) -> TransportSession:
        if not self._open:
            raise ClosedError("the window results writer is not started")
        return self._session


def _kv_subject(kv_key: str) -> str:
    return f"$KV.{METRICS_BUCKET}.{kv_key}"


def _settled() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done
