"""The readers of a consumer's assigned partitions, and the records they hold, as faust messages.

One :class:`~bridges.transport.reader.PartitionReader` per assigned partition pulls records into
its bounded buffer. :class:`PartitionReaders` opens and closes them, takes records from them a fair
share per partition, decodes each into faust's ``ConsumerMessage`` and puts back whatever the
consumer did not deliver. *When* records may go out (flow control, generations, seeks) is the consumer's
business, not this module's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from faust.types import TP, ConsumerMessage

from bridges.transport.envelope import HDR_NULL, HDR_TS, MalformedEnvelope, decode_key, decode_user_headers
from bridges.transport.reader import PartitionReader, ReaderConfig, Record
from bridges.transport.session import TransportSession

__all__ = ["PartitionReaders", "Taken", "decode_record"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Taken:
    """A record taken from a reader, with what is needed to put it back."""

    tp: TP
    reader: PartitionReader
    epoch: int
    record: Record
    message: ConsumerMessage


def decode_record(tp: TP, record: Record, generation: int) -> ConsumerMessage | None:
    """faust's message for ``record``, or None (logged with its place) if its envelope is broken.

    The key, user headers and producer timestamp travel in headers
    (:mod:`bridges.transport.envelope`); a record without a timestamp header gets the time
    JetStream stored it.
    """
    msg = record.msg
    headers = msg.headers
    try:
        key = decode_key(headers)
        user_headers = decode_user_headers(headers)
        raw_ts = headers.get(HDR_TS) if headers else None
        timestamp = float(raw_ts) if raw_ts is not None else record.timestamp_ns / 1e9
    except (MalformedEnvelope, ValueError) as exc:
        log.error(
            "skipping undecodable message %s[%d] offset %d: %s",
            tp.topic, tp.partition, record.offset, exc,
        )
        return None
    value = None if headers and headers.get(HDR_NULL) else msg.data
    return ConsumerMessage(
        tp.topic,
        tp.partition,
        record.offset,
        timestamp,
        0,
        user_headers,
        key,
        value,
        None,
        len(key) if key else 0,
        len(value) if value else 0,
        tp,
        generation_id=generation,
    )


class PartitionReaders:
    """The open readers of one consumer, by partition, and a wake-up for new records."""

    def __init__(self, session: TransportSession, config: ReaderConfig) -> None:
        self._session = session
        self._config = config
        self._readers: dict[TP, PartitionReader] = {}
        self._data = asyncio.Event()
        # Pull consumers are named per reader; the instance part keeps two workers apart.
        self._instance = secrets.token_hex(3)
        self._ids = itertools.count(1)

    def __contains__(self, tp: object) -> bool:
        return tp in self._readers

    def __iter__(self) -> Iterator[TP]:
        return iter(list(self._readers))

    def get(self, tp: TP) -> PartitionReader | None:
        return self._readers.get(tp)

    async def open(self, tp: TP, offset: int) -> None:
        """Start reading ``tp`` at ``offset`` (skipped, with a warning, for an unknown topic)."""
        registry = self._session.registry
        spec = registry.cached(tp.topic) or await registry.lookup(tp.topic)
        if spec is None:
            log.warning("assigned %s but topic %r is not registered; skipping", tp, tp.topic)
            return
        naming = self._session.naming
        reader = PartitionReader(
            self._session.client,
            self._session.js,
            stream=naming.stream(tp.topic, tp.partition),
            filter_subject=naming.data_filter(tp.topic, tp.partition, spec.compacting),
            name=f"{self._instance}-{next(self._ids)}",
            on_data=self._data.set,
            config=self._config,
        )
        self._readers[tp] = reader
        await reader.start(offset)
        reader.resume()

    async def close(self, tps: Iterable[TP]) -> None:
        readers = [self._readers.pop(tp) for tp in set(tps) if tp in self._readers]
        await asyncio.gather(*(reader.close() for reader in readers))

    def reset_after_reconnect(self) -> None:
        for reader in self._readers.values():
            reader.reset_after_reconnect()

    def take(self, tps: Iterable[TP], share: int, generation: int) -> dict[TP, list[Taken]]:
        """Up to ``share`` decoded records of each of ``tps`` that has some buffered.

        Undecodable records are logged and dropped here: they are taken, never delivered.
        """
        per_tp: dict[TP, list[Taken]] = {}
        for tp in tps:
            reader = self._readers.get(tp)
            if reader is None or not reader.buffered:
                continue
            epoch = reader.epoch
            taken = [
                Taken(tp, reader, epoch, record, message)
                for record in reader.take(share)
                if (message := decode_record(tp, record, generation)) is not None
            ]
            if taken:
                per_tp[tp] = taken
        return per_tp

    @staticmethod
    def unread(items: Iterable[Taken]) -> None:
        """Give records back to their readers, in order, to be taken again."""
        by_tp: dict[TP, list[Taken]] = {}
        for item in items:
            by_tp.setdefault(item.tp, []).append(item)
        for taken in by_tp.values():
            taken[0].reader.unread([t.record for t in taken], taken[0].epoch)

    def wake(self) -> None:
        """Records already buffered became deliverable: wake whoever waits for data."""
        self._data.set()

    async def wait_for_data(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for new records or a :meth:`wake`."""
        self._data.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._data.wait()
        except TimeoutError:
            pass
