"""Pipelined, acknowledged JetStream publishing.

nats-py's ``js.publish`` waits for each ack (about 2.4k msg/s here) and ``publish_async`` costs a
task and a future per message. Here every message is sent with a reply subject
``<inbox>.<token>`` under one wildcard subscription, and acks are matched back by token: tens of
thousands of messages per second from one coroutine, with a bounded number in flight so a slow
server pushes back on the caller.

Delivery guarantees:
- Every message carries a ``Nats-Msg-Id``; a retry (after an ack timeout, a reconnect or a
  "no responders") reuses it, so the stream stores it at most once within its duplicate window.
- Sends that share a ``supersede_key`` (a changelog key) are last-value-wins: a send that fails
  after a newer send for the same key was issued is never retried, because retrying would store
  the older value after the newer one. Its future resolves with the newer send's outcome.
- A rejected expectation header (``Nats-Expected-...``) is final: it fails the future with
  :class:`FencedError` when the expectation was a fence, else with :class:`BrokenError`.
- So is "no room" (:mod:`bridges.storage`): the future fails with :class:`StorageFull` at once,
  not resent (the caller keeps the message and tries again later).
- A send with a ``guard`` (a callable) goes out — first or again — only while the guard says so,
  checked right before the message is handed to the client: when it does not, the message is not
  sent and its future fails with :class:`Withheld`. Writes fenced only on this side (final results,
  under the lease deadline) use it, so not even a resend outlives the lease.
- With ``serial_fences`` (streams replicated by a cluster), sends that state the same fence go
  out one at a time: a clustered stream accepts only one write per expected-last-subject-sequence
  subject while its proposal is in flight and refuses the others with "wrong last sequence",
  which would read as a fence. Single-server streams check in order, so there they stay
  pipelined.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from bridges.storage import storage_full
from bridges.transport.send_ledger import SendLedger
from tables.errors import BrokenError, ClosedError, FencedError

__all__ = ["Ack", "ExpectationFailed", "PipelinedPublisher", "PublisherState", "Withheld"]

log = logging.getLogger(__name__)

_SEQ = b'"seq":'
_DUPLICATE = re.compile(rb'"duplicate":\s*true')
_ERR_WRONG_LAST_SEQUENCE = {10071, 10164}


class Ack(NamedTuple):
    stream: str
    seq: int
    duplicate: bool


class ExpectationFailed(BrokenError):
    """The stream refused a write whose ``Nats-Expected-...`` header did not hold.

    A create-only KV write (expected revision 0) ends here when the key exists already.
    """

    def __init__(self, subject: str, description: str) -> None:
        self.subject = subject
        self.description = description
        super().__init__(f"publish to {subject} refused: {description}")


class Withheld(BrokenError):
    """A send's guard said no right before it went out: this attempt was not sent.

    ``resend`` tells an earlier attempt did go out: its outcome is unknown (stored or not).
    """

    def __init__(self, subject: str, *, resend: bool) -> None:
        self.subject = subject
        self.resend = resend
        what = "resend" if resend else "send"
        super().__init__(f"{what} to {subject} withheld: its guard no longer allows it")


class PublisherState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class _Pending:
    token: int
    subject: str
    payload: bytes
    headers: dict[str, str]
    future: asyncio.Future[Ack]
    supersede_key: str | None
    fence: str | None
    first_sent: float
    sent: float
    attempts: int = 1
    retry_at: float | None = None
    guard: Callable[[], bool] | None = None


@dataclass
class _KeyState:
    """Sends in flight for one supersede key, oldest first, and the newest ack seen."""

    tokens: collections.deque[int] = field(default_factory=collections.deque)
    newest: int = 0
    #: the newest acknowledged send for this key, and its token
    last_ack: Ack | None = None
    last_ack_token: int = 0


class PipelinedPublisher:
    """Publish to JetStream with many acks outstanding; an async context manager.

    Args:
        client: a connected nats-py client.
        max_in_flight: unacknowledged messages allowed before :meth:`publish` waits.
        ack_timeout: seconds before an unacknowledged message is sent again.
        give_up_after: seconds after the first attempt when a message fails for good.
        serial_fences: send the messages of one fence one at a time (see the module docstring).
    """

    def __init__(
        self,
        client: Client,
        *,
        max_in_flight: int = 8192,
        ack_timeout: float = 5.0,
        give_up_after: float = 300.0,
        serial_fences: bool = False,
    ) -> None:
        self._client = client
        self._serial_fences = serial_fences
        #: fence -> its sends not yet settled, oldest first; only the first one is out
        self._fence_queues: dict[str, collections.deque[_Pending]] = {}
        self._max_in_flight = max_in_flight
        self._ack_timeout = ack_timeout
        self._give_up_after = give_up_after
        self._state = PublisherState.NEW
        self._inbox = ""
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._pending: dict[int, _Pending] = {}
        self._keys: dict[str, _KeyState] = {}
        #: the sends not acknowledged or failed yet, numbered (the tokens): flush's barrier
        self._sends = SendLedger()
        self._space = asyncio.Event()
        self._space.set()

    @property
    def state(self) -> PublisherState:
        return self._state

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def start(self) -> PipelinedPublisher:
        if self._state is not PublisherState.NEW:
            raise ClosedError(f"a {self._state.value} publisher cannot be started")
        self._inbox = self._client.new_inbox()
        self._sub = await self._client.subscribe(
            f"{self._inbox}.*", cb=self._on_reply, pending_msgs_limit=4 * self._max_in_flight
        )
        self._sweeper = asyncio.create_task(self._sweep(), name="publisher-sweeper")
        self._state = PublisherState.OPEN
        return self

    async def __aenter__(self) -> PipelinedPublisher:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        *,
        supersede_key: str | None = None,
        fence: str | None = None,
        guard: Callable[[], bool] | None = None,
    ) -> asyncio.Future[Ack]:
        """Send one message; the returned future resolves with its :class:`Ack`.

        ``headers`` must already hold the ``Nats-Msg-Id``. ``fence`` names the fence this send
        depends on (for the error message when the server refuses it). ``guard`` is asked right
        before each attempt goes out (after waiting for room in flight, which may take long); a
        refusal fails the future with :class:`Withheld`.
        """
        if self._state is not PublisherState.OPEN:
            raise ClosedError(f"the publisher is {self._state.value}")
        while len(self._pending) >= self._max_in_flight:
            self._space.clear()
            await self._space.wait()
            if self._state is not PublisherState.OPEN:
                raise ClosedError(f"the publisher is {self._state.value}")
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        if guard is not None and not guard():
            future.set_exception(Withheld(subject, resend=False))
            return future
        token = self._sends.begin()
        now = time.monotonic()
        pending = _Pending(token, subject, payload, headers, future, supersede_key, fence, now, now, guard=guard)
        self._pending[token] = pending
        if supersede_key is not None:
            key_state = self._keys.get(supersede_key)
            if key_state is None:
                key_state = self._keys[supersede_key] = _KeyState()
            key_state.tokens.append(token)
            key_state.newest = token
        if fence is not None and self._serial_fences:
            queue = self._fence_queues.setdefault(fence, collections.deque())
            queue.append(pending)
            if len(queue) > 1:
                pending.retry_at = float("inf")  # parked: sent when the sends before it settled
                return future
        await self._client.publish(subject, payload, reply=f"{self._inbox}.{token}", headers=headers)
        return future

    def mark(self) -> int:
        """What a flush called now would wait for (see :meth:`flush`)."""
        return self._sends.mark()

    async def flush(self, timeout: float | None = None, *, mark: int | None = None) -> None:
        """Wait until every message sent so far (or up to ``mark``, taken earlier) is
        acknowledged or has failed; those sent meanwhile are not waited for
        (:mod:`bridges.transport.send_ledger`)."""
        async with asyncio.timeout(timeout):
            await self._sends.flush(mark)

    async def close(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for outstanding acks, then stop. Idempotent."""
        if self._state is PublisherState.CLOSED:
            return
        if self._state is PublisherState.OPEN:
            try:
                await self.flush(timeout)
            except TimeoutError:
                log.warning("closing the publisher with %d unacknowledged messages", len(self._pending))
        self._state = PublisherState.CLOSED
        self._space.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing the ack inbox failed", exc_info=True)
        for pending in list(self._pending.values()):
            self._fail(pending, ClosedError("the publisher was closed before this message was acknowledged"))

    # -- acks -----------------------------------------------------------------------------

    async def _on_reply(self, msg: Msg) -> None:
        try:
            token = int(msg.subject.rsplit(".", 1)[1])
        except ValueError:
            return
        pending = self._pending.get(token)
        if pending is None:
            return  # an ack for a message already retried under a new token, or failed
        data = msg.data
        if not data:
            status = msg.headers.get("Status") if msg.headers else None
            # 503: no stream listens (yet) or its leader is being elected. Try again shortly.
            self._schedule_retry(pending, f"status {status or 'empty reply'}")
            return
        at = data.find(_SEQ)
        if at >= 0 and not data.startswith(b'{"error"'):
            end = at + len(_SEQ)
            stop = end
            while stop < len(data) and 48 <= data[stop] <= 57:
                stop += 1
            stream = _stream_name(data)
            self._succeed(pending, Ack(stream, int(data[end:stop]), _DUPLICATE.search(data) is not None))
            return
        self._on_error_reply(pending, data)

    def _on_error_reply(self, pending: _Pending, data: bytes) -> None:
        try:
            reply = json.loads(data)
            error = reply.get("error") or {}
        except ValueError:
            reply, error = {}, {"description": data[:200].decode(errors="replace")}
        code = error.get("err_code")
        description = error.get("description", "unknown error")
        full = storage_full(code, description, pending.subject, stream=str(reply.get("stream") or ""))
        if full is not None:
            # Final for this send, though its status is 503: the store stays full until someone
            # makes room, and resending until then would hold the caller up for nothing.
            self._fail(pending, full)
            return
        if code in _ERR_WRONG_LAST_SEQUENCE:
            if pending.fence is not None:
                self._fail(pending, FencedError("write", pending.fence))
            else:
                self._fail(pending, ExpectationFailed(pending.subject, description))
            return
        if error.get("code") == 503:
            self._schedule_retry(pending, description)
            return
        self._fail(pending, BrokenError(f"publish to {pending.subject} refused: {description}"))

    def _succeed(self, pending: _Pending, ack: Ack) -> None:
        key_state = self._keys.get(pending.supersede_key) if pending.supersede_key else None
        if key_state is not None and pending.token > key_state.last_ack_token:
            key_state.last_ack = ack
            key_state.last_ack_token = pending.token
        self._forget(pending)
        if not pending.future.done():
            pending.future.set_result(ack)
        if key_state is not None and key_state.tokens:
            self._resolve_superseded(key_state)

    def _fail(self, pending: _Pending, exc: BaseException) -> None:
        self._forget(pending)
        if not pending.future.done():
            pending.future.set_exception(exc)
            # Mark it retrieved: callers that fire and forget should not log "never retrieved".
            pending.future.exception()

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(pending.token, None)
        if pending.fence is not None and self._serial_fences:
            self._next_of_fence(pending)
        key = pending.supersede_key
        if key is not None:
            key_state = self._keys.get(key)
            if key_state is not None:
                try:
                    key_state.tokens.remove(pending.token)
                except ValueError:
                    pass
                if not key_state.tokens:
                    del self._keys[key]
        if len(self._pending) < self._max_in_flight:
            self._space.set()
        self._sends.settle(pending.token)

    def _next_of_fence(self, settled: _Pending) -> None:
        """Take a settled send out of its fence's queue; send the next one if it was first."""
        assert settled.fence is not None
        queue = self._fence_queues.get(settled.fence)
        if not queue or settled not in queue:
            return
        was_first = queue[0] is settled
        queue.remove(settled)
        if not queue:
            del self._fence_queues[settled.fence]
        elif was_first and self._state is PublisherState.OPEN:
            following = queue[0]
            following.attempts = 0  # _resend counts this first send as attempt 1
            following.first_sent = time.monotonic()
            asyncio.get_running_loop().create_task(self._resend(following, following.first_sent))

    def _resolve_superseded(self, key_state: _KeyState) -> None:
        """Settle older sends of the key that wait for a retry: the acked newer one wins."""
        ack = key_state.last_ack
        assert ack is not None
        for token in list(key_state.tokens):
            older = self._pending.get(token)
            if older is not None and older.retry_at is not None and token < key_state.last_ack_token:
                self._succeed(older, ack)

    # -- retries --------------------------------------------------------------------------

    def _schedule_retry(self, pending: _Pending, reason: str) -> None:
        if self._superseded(pending):
            return
        delay = min(0.1 * (2 ** min(pending.attempts, 5)), 2.0)
        pending.retry_at = time.monotonic() + delay
        log.debug("publish to %s will be retried in %.1fs: %s", pending.subject, delay, reason)

    def _superseded(self, pending: _Pending) -> bool:
        """True (and the send settled) when a newer send for the same key makes a retry wrong."""
        key = pending.supersede_key
        if key is None or (self._serial_fences and pending.fence is not None):
            # Serial sends of a fence go out in order: retrying the older one cannot overtake
            # a newer one, which waits behind it (parking it here would deadlock the two).
            return False
        key_state = self._keys.get(key)
        if key_state is None or key_state.newest == pending.token:
            return False
        if key_state.last_ack is not None and key_state.last_ack_token > pending.token:
            self._succeed(pending, key_state.last_ack)
            return True
        newer = self._pending.get(key_state.newest)
        if newer is None:
            return False
        pending.retry_at = float("inf")  # parked: settled when the newer send settles

        def follow(done: asyncio.Future[Ack]) -> None:
            if pending.token not in self._pending:
                return
            if done.cancelled() or done.exception() is not None:
                exc = done.exception() if not done.cancelled() else ClosedError("cancelled")
                assert exc is not None
                self._fail(pending, exc)
            else:
                self._succeed(pending, done.result())

        newer.future.add_done_callback(follow)
        return True

    async def _sweep(self) -> None:
        """Resend what was not acknowledged in time; fail what is past ``give_up_after``."""
        interval = max(0.05, min(self._ack_timeout / 4, 0.5))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            due: list[_Pending] = []
            for pending in self._pending.values():
                if pending.retry_at is not None:
                    if pending.retry_at <= now:
                        due.append(pending)
                elif now - pending.sent >= self._ack_timeout:
                    due.append(pending)
            for pending in due:
                if pending.token not in self._pending:
                    continue
                if now - pending.first_sent >= self._give_up_after:
                    self._fail(
                        pending,
                        BrokenError(
                            f"publish to {pending.subject} not acknowledged after "
                            f"{pending.attempts} attempts over {self._give_up_after:.0f}s"
                        ),
                    )
                    continue
                if self._superseded(pending):
                    continue
                await self._resend(pending, now)

    async def _resend(self, pending: _Pending, now: float) -> None:
        if pending.guard is not None and not pending.guard():
            self._fail(pending, Withheld(pending.subject, resend=pending.attempts > 0))
            return
        pending.retry_at = None
        pending.attempts += 1
        pending.sent = now
        try:
            await self._client.publish(
                pending.subject,
                pending.payload,
                reply=f"{self._inbox}.{pending.token}",
                headers=pending.headers,
            )
        except Exception as exc:  # noqa: BLE001 - reconnecting; the next sweep tries again
            log.debug("resending to %s failed: %s", pending.subject, exc)


def _stream_name(data: bytes) -> str:
    start = data.find(b'"stream":"')
    if start < 0:
        return ""
    start += 10
    return data[start : data.find(b'"', start)].decode()
