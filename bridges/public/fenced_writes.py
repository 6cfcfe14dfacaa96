"""Final results and dead letters, written only while this worker's lease says it owns them.

Changelog writes and offset commits are fenced by the server: a partition's new owner writes a
fence the old owner's writes must state. A window's final value has no such fence (its KV key
is per window, and one write can state only one expected sequence: its own key's revision), so
it is fenced here, on this side, by the member lease's local deadline
(:mod:`bridges.group.lease_clock`: valid until the last acknowledged renewal's *send* time + TTL -
margin). A worker frozen past its lease (GC, a VM pause, SIGSTOP) thus writes nothing from the
moment its lease may have expired, without having to notice first that it was lost.

The protocol of a final value (``FencedWriter.final``):

1. **Term.** The write belongs to the lease term current when it is accepted: the window was
   closed under that membership. It is never sent under another one (after a rejoin the state
   was recovered from the changelog, and the window will be closed again from there).
2. **Gate.** Every attempt to send the KV write — the first, a resend after a lost ack, a write
   after a refusal — goes out only while the lease is valid for that term and the connection is
   up (nats-py would buffer a publish across a reconnect and send it later, unchecked). The
   publisher asks right before it hands the message to the client (``guard``), after any wait
   for room in flight. A withheld attempt waits for a renewal and goes again; the attempt's
   deadline bounds that wait (it then fails, see 5); when the term is over it fails with
   :class:`~tables.errors.FencedError` at once.
3. **KV first.** The value is written stating the revision it replaces (0: none). When refused,
   the key is read: a provisional value or a delete marker is replaced, a key read as absent is
   written again, and a final value found there is compared (see
   :mod:`bridges.public.window_results`). This repeats, backing off, until the final value is stored
   or found.
4. **Then the result subject** (unless the server publishes finals from KV itself:
   :func:`~bridges.public.streams.republishing_results`), with the bytes KV now holds: this worker's value, or the final
   value found there, with ``Nats-Msg-Id`` = ``result:<kv key>``. A final found in KV (a replay
   closing the window again, or a retry after a lost ack) is published only if the results
   stream does not hold it yet (:mod:`bridges.public.published_results`): whoever stored it may
   have died before publishing, and a final is published once, however late the replay. A
   different value found (a non-deterministic aggregate) is logged, and the stored one is
   published: a subscriber never sees a final that KV does not hold. This publish is not gated:
   it repeats what is stored.
5. **Outcome.** The awaitable handed back completes when both are acknowledged. When it failed,
   awaiting it again makes a new attempt from step 2 (reading the key first), under the same
   term: the runtime's flush keeps failed writes and awaits them again at the next commit.

Dead letters follow 1, 2 and 5: a "late" verdict is the partition owner's decision as much as a
final value is, and a worker that lost its partitions may see events as late that their new
owner counts. Their ``Nats-Msg-Id`` makes a repeat a no-op.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bridges.group.lease_clock import LeaseClock
from bridges.public.streams import METRICS_BUCKET
from bridges.transport.envelope import HDR_MSG_ID
from bridges.transport.publisher import Ack, ExpectationFailed, Withheld
from contract.names import result_msg_id
from tables.errors import BrokenError, FencedError

__all__ = ["EXPECTED", "FencedWrite", "FencedWriter", "Publisher", "Stored", "kv_subject"]

log = logging.getLogger(__name__)

EXPECTED: Final = "Nats-Expected-Last-Subject-Sequence"
#: how long one attempt of a write keeps waiting for the lease, reading and writing again before
#: it fails (the flush then fails; the next one tries again)
_ATTEMPT_DEADLINE: Final = 30.0
#: first and longest pause between those tries
_BACKOFF: Final = (0.02, 1.0)


class Publisher(Protocol):
    """The part of :class:`~bridges.transport.publisher.PipelinedPublisher` used here."""

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str], *, guard: Callable[[], bool] | None = None
    ) -> asyncio.Future[Ack]: ...


@dataclass(frozen=True, slots=True)
class Stored:
    """A KV key's last entry: a value, or a delete marker (``deleted``)."""

    revision: int
    value: bytes
    deleted: bool = False

    @property
    def provisional(self) -> bool:
        if self.deleted:
            return False
        try:
            document = json.loads(self.value)
        except ValueError:
            return False
        return isinstance(document, dict) and document.get("final") is False

    @property
    def replaceable(self) -> bool:
        """A final value may be written over this entry (anything but a value that is final)."""
        return self.deleted or self.provisional


def kv_subject(kv_key: str) -> str:
    return f"$KV.{METRICS_BUCKET}.{kv_key}"


class FencedWrite:
    """A write handed to its caller (step 5): awaiting it waits for the outcome of the attempt
    under way; awaiting it again once it has reported a failure starts the next attempt."""

    __slots__ = ("_again", "_attempt", "_failed", "_track")

    def __init__(
        self,
        first: Coroutine[Any, Any, None],
        again: Callable[[], Coroutine[Any, Any, None]],
        track: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self._again = again
        self._track = track
        #: the attempt under way reported its failure to an awaiter
        self._failed = False
        self._attempt = self._start(first)

    def _start(self, attempt: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(attempt)
        task.add_done_callback(_retrieve)
        self._track(task)
        return task

    def __await__(self) -> Generator[Any, None, None]:
        return self._outcome().__await__()

    async def _outcome(self) -> None:
        if self._failed:
            self._failed = False
            self._attempt = self._start(self._again())
        attempt = self._attempt
        try:
            # Shielded: a caller that stops waiting (a flush cancelled on shutdown) does not cut
            # the write off half-way; the writer's close waits for it.
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            if attempt.cancelled():
                self._failed = attempt is self._attempt
            raise
        except BaseException:
            self._failed = attempt is self._attempt
            raise


class _Tries:
    """The tries of one attempt at a write: its deadline and the pauses between them."""

    def __init__(self, what: str, term: int) -> None:
        self.what = what
        self.term = term
        self._loop = asyncio.get_running_loop()
        self._give_up = self._loop.time() + _ATTEMPT_DEADLINE
        self._pause, self._longest = _BACKOFF

    def remaining(self) -> float:
        return max(0.0, self._give_up - self._loop.time())

    def over(self) -> bool:
        return self.remaining() == 0.0

    async def pause(self) -> None:
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, self._longest)


class FencedWriter:
    """Final values and dead letters under the lease (steps 1-5 of the module docstring).

    Args:
        publisher: where writes go (the transport session's pipelined publisher).
        read: reads a KV key's last entry, None when absent.
        lease: the current lease clock (the session's; it is set once the consumer joins).
        connected: whether the connection is up now.
        published: whether the results stream holds a final already, given its subject, its
            ``Nats-Msg-Id`` and its bytes (:class:`~bridges.public.published_results.PublishedResults`);
            None when the server publishes each final from KV (step 4 is then the server's: a
            final stored is a final published).
    """

    def __init__(
        self,
        publisher: Publisher,
        read: Callable[[str], Awaitable[Stored | None]],
        lease: Callable[[], LeaseClock],
        connected: Callable[[], bool],
        published: Callable[[str, str, bytes], Awaitable[bool]] | None,
    ) -> None:
        self._publisher = publisher
        self._read = read
        self._published = published
        self._lease = lease
        self._connected = connected
        #: attempts under way, awaited by close so that none is cut off by it
        self._attempts: set[asyncio.Task[None]] = set()
        #: the lease was found not valid, and not yet valid again (logged once per lapse)
        self._lapsed = False

    def _track(self, attempt: asyncio.Task[None]) -> None:
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)

    # -- the gate ---------------------------------------------------------------------------

    def guard(self, term: int | None = None) -> Callable[[], bool]:
        """Step 2's check for writes of ``term`` (the current one when None)."""
        lease = self._lease()
        term = lease.term() if term is None else term
        connected = self._connected
        return lambda: lease.valid(term) and connected()

    async def wait_writable(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) until the lease is valid; False if it is not by then.

        What the closer asks before closing anything: a window closed while the lease may have
        expired could not be written, and another worker may own it by now.
        """
        lease = self._lease()
        if not lease.valid():
            if not self._lapsed:
                self._lapsed = True
                until = lease.valid_until()
                log.warning(
                    "this worker's lease may have expired (%s): no windows are closed and no final "
                    "results written until it is renewed",
                    "none held" if until is None else f"its deadline passed {lease.now() - until:.3f}s ago",
                )
            if not await lease.wait_valid(timeout):
                return False
        if self._lapsed:
            self._lapsed = False
            log.info("the lease is valid again (term %d): closing windows and writing results", lease.term())
        return True

    async def _until_valid(self, tries: _Tries) -> None:
        lease = self._lease()
        if lease.valid(tries.term) or await lease.wait_valid(tries.remaining(), tries.term):
            return
        if lease.term() != tries.term:
            raise FencedError(tries.what, f"lease term {tries.term}")
        raise BrokenError(f"{tries.what}: not written, the lease was not renewed within {_ATTEMPT_DEADLINE:.0f}s")

    # -- final values -----------------------------------------------------------------------

    async def final(
        self,
        kv_key: str,
        subject: str,
        payload: bytes,
        *,
        revision: Callable[[], int],
        after: Awaitable[None] | None = None,
    ) -> FencedWrite:
        """Write a window's final value, then publish it on ``subject`` (steps 1-5).

        ``revision`` gives the revision the value replaces (its provisional one, or 0), read once
        ``after`` is done (a provisional write in flight, which never fails). Without ``after``
        the KV write is sent before this returns, so writes go out in the order they are made and
        a busy publisher pushes back on the caller.
        """
        term = self._lease().term()
        if after is None:
            sent = await self._send_kv(kv_key, payload, revision(), term)
            first = self._settle_final(kv_key, subject, payload, term, sent)
        else:
            first = self._final_after(after, revision, kv_key, subject, payload, term)
        return FencedWrite(first, lambda: self._final_again(kv_key, subject, payload, term), self._track)

    async def _final_after(
        self, after: Awaitable[None], revision: Callable[[], int], kv_key: str, subject: str, payload: bytes, term: int
    ) -> None:
        await asyncio.wait([asyncio.ensure_future(after)])
        sent = await self._send_kv(kv_key, payload, revision(), term)
        await self._settle_final(kv_key, subject, payload, term, sent)

    async def _settle_final(
        self, kv_key: str, subject: str, payload: bytes, term: int, sent: asyncio.Future[Ack]
    ) -> None:
        try:
            await sent
        except (ExpectationFailed, Withheld):
            # Refused: the key holds something else. Withheld: not sent, or resent after an
            # attempt whose outcome is unknown. Either way, see what the key holds.
            await self._final_again(kv_key, subject, payload, term)
        else:
            await self._publish_result(kv_key, subject, payload)

    async def _final_again(self, kv_key: str, subject: str, payload: bytes, term: int) -> None:
        stored, found = await self._store_final(kv_key, payload, term)
        if self._published is None:
            return  # the server publishes what KV stores
        if found and await self._published(subject, result_msg_id(kv_key), stored):
            log.debug("window %s: its final value is stored and published already", kv_key)
            return
        await self._publish_result(kv_key, subject, stored)

    async def _store_final(self, kv_key: str, payload: bytes, term: int) -> tuple[bytes, bool]:
        """Steps 2 and 3: the bytes the key holds once it is final (``payload`` when ours won),
        and whether they were found there (a final stored before this attempt, by anyone).

        Raises:
            FencedError: the term ended: the write is void.
            BrokenError: the lease was not renewed, or the key kept changing under the final
                value, for ``_ATTEMPT_DEADLINE``.
        """
        tries = _Tries(f"final value of window {kv_key}", term)
        while True:
            await self._until_valid(tries)
            stored = await self._read(kv_key)
            if stored is not None and not stored.replaceable:
                _compare_existing(kv_key, payload, stored)
                return stored.value, True
            # A provisional value this worker did not know of (the partition's previous owner
            # wrote it, or the ack of our own got lost), a delete marker, or no key at all as far
            # as the replica that answered knows: the final value goes over it.
            expected = 0 if stored is None else stored.revision
            if stored is None:
                log.debug("window %s: the key reads as absent; writing the final value again", kv_key)
            else:
                replaced = "delete marker" if stored.deleted else "provisional value"
                log.debug("window %s: replacing the %s at revision %d", kv_key, replaced, expected)
            try:
                await (await self._send_kv(kv_key, payload, expected, term))
            except ExpectationFailed:
                pass  # written again since the read, or the read was behind: read once more
            except Withheld:
                pass  # the lease lapsed (or the connection dropped) after the check: wait again
            else:
                return payload, False
            if tries.over():
                raise BrokenError(
                    f"window {kv_key}: the final value was refused for {_ATTEMPT_DEADLINE:.0f}s, "
                    "each time over a value changed since it was read"
                )
            # Give the other writer's burst, or a replica behind the leader, a moment to settle.
            await tries.pause()

    async def _send_kv(self, kv_key: str, payload: bytes, expected: int, term: int) -> asyncio.Future[Ack]:
        # The result's id goes with it: a results stream the server feeds from KV keeps it, so a
        # subscriber sees the Nats-Msg-Id a worker's own publish would carry.
        headers = {EXPECTED: str(expected), HDR_MSG_ID: result_msg_id(kv_key)}
        return await self._publisher.publish(kv_subject(kv_key), payload, headers, guard=self.guard(term))

    async def _publish_result(self, kv_key: str, subject: str, stored: bytes) -> None:
        if self._published is None:
            return  # the server publishes what KV stores
        await (await self._publisher.publish(subject, stored, {HDR_MSG_ID: result_msg_id(kv_key)}))

    # -- dead letters -------------------------------------------------------------------------

    async def dead_letter(self, subject: str, payload: bytes, headers: dict[str, str]) -> FencedWrite:
        """Publish a dead letter (steps 1, 2 and 5); ``headers`` hold its ``Nats-Msg-Id``."""
        term = self._lease().term()
        sent = await self._publisher.publish(subject, payload, headers, guard=self.guard(term))
        return FencedWrite(
            self._settle_letter(subject, payload, headers, term, sent),
            lambda: self._letter_again(subject, payload, headers, term),
            self._track,
        )

    async def _settle_letter(
        self, subject: str, payload: bytes, headers: dict[str, str], term: int, sent: asyncio.Future[Ack]
    ) -> None:
        try:
            await sent
        except Withheld:
            await self._letter_again(subject, payload, headers, term)

    async def _letter_again(self, subject: str, payload: bytes, headers: dict[str, str], term: int) -> None:
        tries = _Tries(f"dead letter {headers.get(HDR_MSG_ID, subject)}", term)
        while True:
            await self._until_valid(tries)
            try:
                await (await self._publisher.publish(subject, payload, headers, guard=self.guard(term)))
                return
            except Withheld:
                if tries.over():
                    raise BrokenError(f"{tries.what}: withheld for {_ATTEMPT_DEADLINE:.0f}s (lease or connection)") from None
            # Not spinning while the connection is down (the lease may well be valid meanwhile).
            await tries.pause()

    # -- closing ------------------------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Wait (bounded) for the attempts under way: a write accepted is finished or failed."""
        if self._attempts:
            _, pending = await asyncio.wait(set(self._attempts), timeout=timeout)
            if pending:
                log.warning("closing with %d final results or dead letters not stored", len(pending))


def _compare_existing(kv_key: str, payload: bytes, stored: Stored) -> None:
    try:
        same = json.loads(stored.value) == json.loads(payload)
    except ValueError:
        same = False
    if not same:
        log.error(
            "window %s was already final with another value; keeping (and publishing) the stored one.\n"
            " stored: %s\n computed now: %s",
            kv_key, stored.value, payload,
        )


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark the outcome seen: a failed attempt is reported by whoever awaits the write."""
    if not task.cancelled():
        task.exception()
