"""The consumer's fetch loop: records from the partition readers, delivered to faust in batches.

faust's own fetch loop (``Consumer._drain_messages`` over ``getmany``) races the delivery of
*every* message against ``suspend_flow`` with ``Service.wait_first`` — four tasks per message,
about half a worker's time here — and silently drops what it fetched when flow stops or the
generation changes mid-batch. This loop races one task per batch, delivers a message only while
its generation is current and flow is on, and puts back whatever it did not deliver, so a record
taken from a reader is either delivered or read again.

:class:`FetchingConsumer` is that loop and nothing else: which partitions are read, from where,
and when newly positioned ones may hand records out is decided by its subclass,
:class:`~bridges.transport.consumer.Consumer`, through the attributes it declares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP, ConsumerMessage, Message
from faust.types.tuples import ack_lock
from mode import Service, ServiceT

from bridges.transport.kept_flow import KeptFlow
from bridges.transport.partition_readers import PartitionReaders, Taken

__all__ = ["FetchingConsumer"]

#: messages delivered between yields to the event loop (well below faust's stream buffer size)
_YIELD_EVERY = 50


class FetchingConsumer(FaustConsumer):
    """faust's Consumer with this transport's fetch loop; the subclass sets the attributes below."""

    #: the readers of the assigned partitions
    _readers: PartitionReaders
    #: newly assigned partitions not yet positioned by ``seek_to_committed``: they hand out nothing
    _awaiting_seek: set[TP]
    #: partitions ``seek_to_committed`` positioned, held until faust resumes its flow
    _positioned: set[TP]
    #: partitions that hand out nothing for now, whatever faust pauses or resumes: those being
    #: revoked while others flow on, and the active changelogs this worker keeps writing
    _withheld: set[TP]
    #: the stream partitions kept flowing through the rebalance under way: never paused
    _kept_flow: KeptFlow
    #: the partition of the record being handed to faust, if one is; set after each record
    #: while someone waits for a delivery to end (see _delivery_ended)
    _delivering: TP | None = None
    _delivered: asyncio.Event | None = None

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        fetcher_stopped = cast(Service, fetcher)._stopped.is_set
        consumer_stopped = self._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                if not self.flow_active:
                    await self.wait(cast(Any, self.can_resume_flow))
                    continue
                self.diag.set_flag(CONSUMER_FETCHING)
                batch = await self._next_batch(self._get_active_partitions(), timeout=1.0)
                await self.sleep(0)
                if batch:
                    if self.should_stop:
                        self._readers.unread(batch)
                    else:
                        await self.wait_first(self._deliver(batch), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, batch: list[Taken]) -> None:
        """Hand a batch to faust's conductor in order; put back what is not delivered."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        delivered = 0
        try:
            for item in batch:
                message = item.message
                if not self._may_deliver(message):
                    return
                tp = item.tp
                # From here on (the gap and commit below await too) a revoke waits for it.
                self._delivering = tp
                offset = message.offset
                previous = read_offset[tp]
                if previous and offset - previous > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, previous + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                delivered += 1  # counted before the await: a cancelled delivery is not redone
                await callback(message)
                self._delivering = None
                read_offset[tp] = offset
                if self._delivered is not None:
                    self._delivered.set()
                if delivered % _YIELD_EVERY == 0:
                    # Let the agents drain their queues before they fill up.
                    await asyncio.sleep(0)
        finally:
            self._delivering = None
            self._readers.unread(batch[delivered:])

    async def _delivery_ended(self, tps: frozenset[TP]) -> None:
        """Until no record of ``tps`` is being handed to faust (a handover can wait for a full
        agent queue): withheld, none is started after it (:meth:`_may_deliver`)."""
        while self._delivering in tps:
            self._delivered = asyncio.Event()
            try:
                await self._delivered.wait()
            finally:
                self._delivered = None

    def _may_deliver(self, message: ConsumerMessage) -> bool:
        """Streams skip — and ack — messages of a superseded generation or of stopped flow;
        a withheld partition is being revoked."""
        return (
            self.flow_active
            and self.app.flow_control.is_active()
            and message.generation_id == self.app.consumer_generation_id
            and message.tp not in self._withheld
        )

    def ack(self, message: Message) -> bool:
        """Record an ack — unless the message belongs to a superseded generation.

        faust's streams ack the messages they skip (stale generation, flow stopped), and after
        a rebalance the consumer would count those acks, letting a later commit jump over
        messages nobody processed. Such a message is only marked done here.
        """
        if message.generation_id != self.app.consumer_generation_id:
            with ack_lock:
                message.acked = True
                self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        """faust's contract; this consumer's own fetch loop uses :meth:`_next_batch` instead."""
        records: dict[TP, list[ConsumerMessage]] = {}
        for item in await self._next_batch(active_partitions, timeout):
            records.setdefault(item.tp, []).append(item.message)
        return records

    async def _next_batch(self, active: set[TP] | None, timeout: float) -> list[Taken]:
        """The next records of the active partitions, round-robin; waits up to ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        limit = self.app.conf.broker_max_poll_records or 500
        while True:
            batch = self._take_buffered(active, limit)
            if batch or not self.flow_active:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._readers.wait_for_data(remaining)

    # Buffered records become deliverable again when a partition is resumed or its stream's
    # buffer drains: wake the fetch loop, which otherwise waits for *new* records to arrive.

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        self._readers.wake()

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        """faust pauses every assigned partition when it takes an assignment: not those kept flowing."""
        super().pause_partitions({tp for tp in tps if not self._kept_flow.spares(tp)})

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        super().resume_partitions(tps)
        self._readers.wake()

    def resume_flow(self) -> None:
        super().resume_flow()
        # After faust's flow control resumed (and cleared the agents' queues): partitions
        # positioned by seek_to_committed may hand out records now.
        self._awaiting_seek -= self._positioned
        self._positioned.clear()
        self._readers.wake()

    def _take_buffered(self, active: set[TP] | None, limit: int) -> list[Taken]:
        held = self._awaiting_seek | self._withheld
        tps = [tp for tp in (active if active is not None else self._readers) if tp not in held]
        if not tps:
            return []
        share = max(1, limit // len(tps))
        per_tp = self._readers.take(tps, share, self.app.consumer_generation_id)
        for tp, taken in per_tp.items():
            self.app.monitor.track_tp_end_offset(tp, taken[0].reader.highwater)
        # faust's scheduler interleaves topics and partitions, so none is starved.
        return [item for _, item in self.scheduler.iterate(per_tp)]

    def _to_message(self, tp: TP, record: Any) -> ConsumerMessage:
        return cast(ConsumerMessage, record)  # already built by _getmany
