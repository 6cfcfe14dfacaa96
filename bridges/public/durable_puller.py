"""Pulling a shared durable consumer by hand, into a bounded buffer, with explicit acks.

nats-py's ``PullSubscription.fetch`` costs tasks and a uuid per message (see
``bridges/transport/reader.py``); here, as there, pull requests ``{"batch": n, "expires": ns}`` are
published to ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` with our own reply subject.
Unlike the transport's reader, the consumer is *durable* and *shared*: every process pulling it
gets a disjoint share of the messages, and each message must be acked (or it is redelivered,
perhaps to another process, after ``ack_wait``).

Backpressure: a request is only issued while ``buffered + in hand + requested + batch`` fits the
capacity, where "in hand" counts messages taken but not yet :meth:`~DurablePuller.settle`-d. So
a slow processor leaves messages on the server, where another process can take them.

Each request replies on its own subject ``<inbox>.<n>``, so its end (a ``408`` when it expires, a
``409`` when the server cuts it short) is attributed exactly; data messages carry their original
subject and are counted against the oldest open request, the order the server serves them in.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from tables.errors import BrokenError, ClosedError, ConfigError

__all__ = ["DurablePuller", "PullerConfig", "PullerState"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullerConfig:
    batch: int = 256
    #: messages a process may hold: buffered, in hand and requested
    capacity: int = 1024
    max_requests: int = 2
    #: how long a pull request waits on the server; also bounds how long a stop waits for them
    expires: float = 3.0
    #: unacked messages are redelivered after this long
    ack_wait: float = 30.0
    #: unacked messages the consumer allows across *all* processes
    max_ack_pending: int = 8192

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= self.capacity:
            raise ConfigError("batch", self.batch, f"must be between 1 and capacity ({self.capacity})", kind="Argument")


class PullerState(enum.Enum):
    NEW = "new"
    PULLING = "pulling"
    STOPPING = "stopping"
    CLOSED = "closed"


class DurablePuller:
    """Keeps a bounded buffer of one durable consumer's messages filled.

    Args:
        client: a connected nats-py client (not owned).
        stream: the stream the consumer reads.
        consumer: the durable name; created (or updated) on :meth:`start`.
        on_data: called synchronously whenever messages become available.
    """

    def __init__(
        self,
        client: Client,
        *,
        stream: str,
        consumer: str,
        on_data: Callable[[], None],
        config: PullerConfig = PullerConfig(),
    ) -> None:
        self._client = client
        self._stream = stream
        self._consumer = consumer
        self._on_data = on_data
        self._config = config
        self._buffer: collections.deque[Msg] = collections.deque()
        self._in_hand = 0
        # Open requests, oldest first: request number -> messages it may still deliver.
        self._requests: dict[int, int] = {}
        self._requested_at: dict[int, float] = {}
        self._next_request = 0
        self._inbox = client.new_inbox()
        self._sub: Subscription | None = None
        self._wakeup = asyncio.Event()
        self._requests_done = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._state = PullerState.NEW

    @property
    def state(self) -> PullerState:
        return self._state

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def open_requests(self) -> int:
        return len(self._requests)

    async def start(self) -> DurablePuller:
        if self._state is not PullerState.NEW:
            raise ClosedError(f"a {self._state.value} puller cannot be started")
        await self.ensure_consumer()
        self._sub = await self._client.subscribe(
            f"{self._inbox}.*", cb=self._on_msg, pending_msgs_limit=4 * self._config.capacity
        )
        self._state = PullerState.PULLING
        self._wakeup.set()  # the first requests go out at once
        self._pump = asyncio.create_task(self._run_pump(), name=f"pull-{self._stream}-{self._consumer}")
        return self

    async def ensure_consumer(self) -> None:
        """Create the durable consumer, or update it to this configuration (idempotent)."""
        config = self._config
        try:
            await self._client.jetstream().add_consumer(
                self._stream,
                config=ConsumerConfig(
                    name=self._consumer,
                    durable_name=self._consumer,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=config.ack_wait,
                    max_deliver=-1,
                    max_ack_pending=config.max_ack_pending,
                    max_waiting=512,
                ),
            )
        except APIError as exc:
            raise BrokenError(
                f"cannot create consumer {self._consumer} on {self._stream}: {exc.description}"
            ) from None

    def take(self, limit: int) -> list[Msg]:
        """Up to ``limit`` buffered messages; they count as in hand until :meth:`settle`."""
        buffer = self._buffer
        out = [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        self._in_hand += len(out)
        return out

    def settle(self, count: int) -> None:
        """``count`` messages taken earlier are acked (or given back): room to pull more."""
        self._in_hand = max(0, self._in_hand - count)
        self._wakeup.set()

    async def stop_pulling(self, timeout: float | None = None) -> None:
        """Issue no more requests and wait (bounded) until the open ones have ended.

        Messages those requests still deliver land in the buffer, to be processed and acked
        like any other, so nothing waits out ``ack_wait`` to reach another process.
        """
        if self._state is PullerState.PULLING:
            self._state = PullerState.STOPPING
            if self._pump is not None:
                self._pump.cancel()
                try:
                    await self._pump
                except asyncio.CancelledError:
                    pass
        if self._state is PullerState.STOPPING and self._requests:
            self._requests_done.clear()
            try:
                await asyncio.wait_for(
                    self._requests_done.wait(),
                    self._config.expires + 1.0 if timeout is None else timeout,
                )
            except TimeoutError:
                log.debug("%s: %d pull requests still open at stop", self._stream, len(self._requests))

    async def close(self) -> None:
        """Stop pulling, give buffered messages back (NAK: redelivered at once, perhaps to
        another process) and unsubscribe. Idempotent."""
        if self._state is PullerState.CLOSED:
            return
        if self._state is PullerState.PULLING:
            await self.stop_pulling(timeout=0)
        self._state = PullerState.CLOSED
        try:
            if self._sub is not None:
                await self._sub.unsubscribe()
            while self._buffer:
                await self._client.publish(self._buffer.popleft().reply, b"-NAK")
        except Exception:
            log.debug("closing the puller of %s failed", self._stream, exc_info=True)
        self._buffer.clear()

    # -- incoming -------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:
            if self._state is PullerState.CLOSED:
                return
            self._buffer.append(msg)
            if self._requests:
                oldest = next(iter(self._requests))
                self._requests[oldest] -= 1
                if self._requests[oldest] <= 0:
                    self._end_request(oldest)
            self._on_data()
            return
        try:
            number = int(msg.subject.rsplit(".", 1)[1])
        except ValueError:
            return
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":
            return  # idle heartbeat
        if status == "409" and "Consumer Deleted" in headers.get("Description", ""):
            log.warning("%s: consumer %s was deleted; recreating it", self._stream, self._consumer)
            asyncio.create_task(self._recreate(), name=f"recreate-{self._consumer}")
        elif status not in ("404", "408", "409"):
            log.debug("%s: pull request ended with status %s %s", self._stream, status, headers)
        self._end_request(number)

    def _end_request(self, number: int) -> None:
        self._requests.pop(number, None)
        self._requested_at.pop(number, None)
        if not self._requests:
            self._requests_done.set()
        self._wakeup.set()

    async def _recreate(self) -> None:
        try:
            await self.ensure_consumer()
        except BrokenError as exc:
            log.warning("%s", exc)

    # -- pulling --------------------------------------------------------------------------

    async def _run_pump(self) -> None:
        config = self._config
        # The state is checked as well as the task cancelled: Python 3.11's wait_for can swallow
        # a cancellation that arrives just as the event it waits for is set.
        while self._state is PullerState.PULLING:
            try:
                # The timeout doubles as the watchdog for requests lost in a reconnect.
                await asyncio.wait_for(self._wakeup.wait(), config.expires)
            except TimeoutError:
                pass
            self._wakeup.clear()
            if self._state is not PullerState.PULLING:
                return
            now = time.monotonic()
            for number, at in list(self._requested_at.items()):
                if now - at > 2 * config.expires + 1:
                    self._end_request(number)  # lost: its 408 will never come
            while (
                len(self._requests) < config.max_requests
                and len(self._buffer) + self._in_hand + sum(self._requests.values()) + config.batch
                <= config.capacity
                and self._client.is_connected
            ):
                if not await self._request(config.batch):
                    break

    async def _request(self, batch: int) -> bool:
        self._next_request += 1
        number = self._next_request
        self._requests[number] = batch
        self._requested_at[number] = time.monotonic()
        self._requests_done.clear()
        body = json.dumps({"batch": batch, "expires": int(self._config.expires * 1e9)}).encode()
        try:
            await self._client.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}",
                body,
                reply=f"{self._inbox}.{number}",
            )
        except Exception as exc:  # noqa: BLE001 - disconnected; the watchdog asks again
            log.debug("%s: pull request failed: %s", self._stream, exc)
            # Forgotten without a wakeup: the watchdog's timeout paces the next attempt.
            self._requests.pop(number, None)
            self._requested_at.pop(number, None)
            if not self._requests:
                self._requests_done.set()
            return False
        return True
