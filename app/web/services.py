"""The NATS side of the web process: one connection shared by the event sink, the NATS ingest
consumer and the metrics reader, opened and closed in the right order.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.settings import Settings
from app.web.event_rules import judge_payload
from bridges.connection import ConnectionSettings, connect, disconnect
from bridges.limits import DAY, Limits
from bridges.public.arrival_clock import IngestWatermark
from bridges.public.durable_puller import PullerConfig
from bridges.public.event_sink import EventSink
from bridges.public.metrics_reader import MetricsReader
from bridges.public.nats_ingest import NatsIngest
from bridges.public.streams import PublicLimits, PublicStreams
from contract.names import EVENTS_TOPIC
from tables.errors import ClosedError

if TYPE_CHECKING:  # for annotations only: at run time only bridges imports nats
    from nats.aio.client import Client

__all__ = ["ServicesState", "WebOptions", "WebServices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebOptions:
    """What the web process needs beyond the connection; from :class:`Settings` in production."""

    prefix: str = "faust"
    partitions: int = 8
    replicas: int = 1
    #: the events topic's bound, applied to its streams at start (EVENTS_RETENTION, EVENTS_MAX_BYTES)
    events_limits: Limits = Limits(7 * DAY)
    #: the INGEST and DEADLETTER streams' bounds, applied at start (the metrics bucket's are the workers')
    public_limits: PublicLimits = PublicLimits()
    #: seconds a request waits for JetStream's acknowledgements before answering 503
    ack_deadline: float = 10.0
    #: seconds a readiness check waits for NATS to answer a ping
    ready_timeout: float = 1.0
    #: seconds :meth:`WebServices.stop` may take before giving up on unfinished work
    stop_timeout: float = 15.0
    puller: PullerConfig = PullerConfig()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebOptions:
        return cls(
            prefix=settings.nats_prefix, partitions=settings.partitions, replicas=settings.nats_replicas,
            events_limits=settings.events_limits, public_limits=settings.public_limits,
        )


class ServicesState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class WebServices:
    """Connection, sink, reader and NATS ingest; an async context manager."""

    def __init__(
        self,
        connection: ConnectionSettings,
        options: WebOptions = WebOptions(),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connection = connection
        self._options = options
        self._clock = clock
        self._streams = PublicStreams(options.prefix, options.replicas, options.public_limits, update_limits=True)
        self._client: Client | None = None
        self._watermark: IngestWatermark | None = None
        self._sink: EventSink | None = None
        self._reader: MetricsReader | None = None
        self._ingest: NatsIngest | None = None
        self._state = ServicesState.NEW

    @property
    def state(self) -> ServicesState:
        return self._state

    @property
    def options(self) -> WebOptions:
        return self._options

    @property
    def client(self) -> Client:
        """The NATS connection (for what reads NATS besides the services: /metrics)."""
        if self._client is None:
            raise ClosedError("the web services are not open")
        return self._client

    @property
    def sink(self) -> EventSink:
        if self._sink is None:
            raise ClosedError("the web services are not open")
        return self._sink

    @property
    def reader(self) -> MetricsReader:
        if self._reader is None:
            raise ClosedError("the web services are not open")
        return self._reader

    @property
    def ingest(self) -> NatsIngest:
        if self._ingest is None:
            raise ClosedError("the web services are not open")
        return self._ingest

    async def start(self) -> WebServices:
        """Connect (retrying until the connection's deadline), then start sink, reader, ingest."""
        if self._state is not ServicesState.NEW:
            raise ClosedError(f"{self._state.value} web services cannot be started")
        self._state = ServicesState.OPEN
        options = self._options
        try:
            self._client = await connect(self._connection, name=f"{self._connection.name}:web")
            self._watermark = await IngestWatermark(self._client, ingest_stream=self._streams.ingest).start()
            self._sink = await EventSink(
                self._client, topic=EVENTS_TOPIC, prefix=options.prefix, partitions=options.partitions,
                replicas=options.replicas, retention=options.events_limits.max_age,
                max_bytes=options.events_limits.max_bytes, ack_deadline=options.ack_deadline,
                watermark=self._watermark.current,
            ).start()
            # The query API only reads the bucket: the workers, which write it, own its limits.
            reading = dataclasses.replace(self._streams, update_limits=False)
            self._reader = await MetricsReader(self._client, streams=reading, clock=self._clock).start()
            self._ingest = await NatsIngest(
                self._client, self._sink, judge_payload, streams=self._streams, config=options.puller,
                ack_deadline=options.ack_deadline, clock=self._clock,
            ).start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def ready(self) -> bool:
        """NATS answers a ping within ``ready_timeout``, the ingest consumer runs and JetStream
        has room for events (see :meth:`unready_because`)."""
        return await self.unready_because() is None

    async def unready_because(self) -> str | None:
        """Why the process cannot take events now, or None when it can (what ``/readyz`` says).

        Storage full is asked of the streams, not assumed to last: a readiness check while the
        sink is in that state asks each refused partition whether it has room again.
        """
        client = self._client
        if self._state is not ServicesState.OPEN or client is None or not client.is_connected:
            return "NATS is not connected"
        if self._ingest is None or not self._ingest.running:
            return "the NATS ingest consumer is not running"
        try:
            await client.flush(timeout=self._options.ready_timeout)  # type: ignore[arg-type]  # seconds, float
        except Exception:  # noqa: BLE001 - any failure to answer is "not ready"
            return f"NATS did not answer within {self._options.ready_timeout}s"
        if self._sink is not None and not await self._sink.has_room(timeout=self._options.ready_timeout):
            error = self._sink.storage.error
            return str(error) if error is not None else "storage full"
        return None

    async def stop(self) -> None:
        """Stop the ingest consumer (finishing what it pulled), the sink and the reader; drain.

        Order: NATS ingest (acks its last chunk), sink (waits for outstanding acks), reader,
        then the connection is drained; the first two share ``stop_timeout``. Idempotent.
        """
        if self._state is ServicesState.CLOSED:
            return
        self._state = ServicesState.CLOSED
        deadline = time.monotonic() + self._options.stop_timeout
        if self._ingest is not None:
            await self._ingest.stop(self._options.stop_timeout)
        if self._sink is not None:
            await self._sink.close(max(0.0, deadline - time.monotonic()))
        if self._reader is not None:
            await self._reader.close()
        if self._watermark is not None:
            await self._watermark.close()
        if self._client is not None:
            await disconnect(self._client)

    async def __aenter__(self) -> WebServices:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
