"""Publishing events the way any NATS client may: JetStream publishes to ``events.<type>.<student_id>``.

The ingest stream stores them and acknowledges each one, so a publisher knows nothing was lost
while the web processes (which validate, deduplicate and forward them) are down. Used by the
simulator; other services can do the same with any NATS client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from nats.aio.client import Client

from bridges.connection import ConnectionSettings, connect, disconnect
from contract.names import ingest_subject
from tables.errors import BrokenError

__all__ = ["NatsIngestClient"]

log = logging.getLogger(__name__)


class NatsIngestClient:
    """Owns its connection; :meth:`close` drains it."""

    def __init__(self, client: Client, *, timeout: float = 10.0) -> None:
        self._client = client
        self._timeout = timeout

    @classmethod
    async def connect(cls, settings: ConnectionSettings, *, timeout: float = 10.0) -> NatsIngestClient:
        return cls(await connect(settings, name=f"{settings.name}:ingest-client"), timeout=timeout)

    @property
    def connected(self) -> bool:
        return bool(self._client.is_connected)

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> int:
        """Publish every event and wait for the ingest stream's acks; returns how many.

        Raises:
            BrokenError: NATS is not connected, or some publishes were not acknowledged
                (resending the whole batch is safe: ingest keeps each ``event_id`` once).
        """
        if not self._client.is_connected:
            raise BrokenError("NATS is not connected")
        js = self._client.jetstream()
        outcomes = await asyncio.gather(
            *(
                js.publish(
                    ingest_subject(str(event["type"]), str(event["student_id"])),
                    json.dumps(event, separators=(",", ":")).encode(),
                    timeout=self._timeout,
                )
                for event in events
            ),
            return_exceptions=True,
        )
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failed:
            raise BrokenError(f"{len(failed)} of {len(events)} NATS publishes failed: {type(failed[0]).__name__}")
        return len(events)

    async def close(self) -> None:
        await disconnect(self._client)
