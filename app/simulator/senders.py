"""Where the simulator's events go: HTTP ingest or the NATS ingest subjects.

Both answer with a :class:`Delivery` or raise :class:`IngestUnavailable` when trying again later
may help (connection refused, 503, no acknowledgement); resending a whole batch is always safe,
as ingest stores each ``event_id`` once. Anything else (a refused token, a body the server
will never take) raises :class:`IngestRefused`: retrying would not help.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bridges.connection import ConnectionSettings, Secret
from bridges.public.ingest_client import NatsIngestClient
from tables.errors import BrokenError, StreamsError

__all__ = ["Delivery", "HttpSender", "IngestRefused", "IngestUnavailable", "NatsSender", "Sender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What ingest said about one batch."""

    #: stored now (NATS ingest: taken into its stream, checked and deduplicated later)
    accepted: int = 0
    #: already stored before (HTTP ingest tells; NATS ingest does not)
    duplicates: int = 0
    #: refused by the contract (HTTP 422); nothing of the batch was stored
    refused: int = 0


class IngestUnavailable(BrokenError):
    """Ingest could not take the batch now; ``retry_after`` is the server's hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IngestRefused(StreamsError):
    """Ingest refused the batch for good (a wrong token, an unexpected answer)."""


class Sender(Protocol):
    """One ingest path."""

    @property
    def name(self) -> str: ...

    async def send(self, events: Sequence[dict[str, Any]]) -> Delivery: ...

    async def close(self) -> None: ...


class HttpSender:
    """``POST <url>/v1/events`` with ``{"events": [...]}`` (and the bearer token, if one is set)."""

    name = "HTTP"

    def __init__(self, url: str, *, token: Secret | None = None, timeout: float = 30.0) -> None:
        self._endpoint = url.rstrip("/") + "/v1/events"
        self._headers = {"Authorization": f"Bearer {token.value}"} if token is not None else {}
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def send(self, events: Sequence[dict[str, Any]]) -> Delivery:
        body = json.dumps({"events": list(events)}, separators=(",", ":"))
        try:
            async with self._session.post(
                self._endpoint, data=body, headers={"Content-Type": "application/json", **self._headers}
            ) as response:
                answer = await response.text()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IngestUnavailable(f"{self._endpoint}: {type(exc).__name__}: {exc}") from None
        if status == 202:
            counts = json.loads(answer)
            return Delivery(accepted=int(counts["accepted"]), duplicates=int(counts["duplicates"]))
        if status == 422:
            log.debug("HTTP ingest refused %d events: %s", len(events), answer)
            return Delivery(refused=len(events))
        if status == 503 or status >= 500:
            hint = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise IngestUnavailable(f"{self._endpoint} answered {status}", retry_after=hint)
        if status == 401:
            raise IngestRefused(f"{self._endpoint} answered 401: set INGEST_TOKEN to the server's token")
        raise IngestRefused(f"{self._endpoint} answered {status}: {answer[:300]}")

    async def close(self) -> None:
        await self._session.close()


class NatsSender:
    """Each event published to ``events.<type>.<student_id>`` (:mod:`bridges.public.ingest_client`).

    Invalid events are taken too and dead-lettered later by NATS ingest, with the reason.
    """

    name = "NATS"

    def __init__(self, client: NatsIngestClient) -> None:
        self._client = client

    @classmethod
    async def connect(cls, settings: ConnectionSettings) -> NatsSender:
        return cls(await NatsIngestClient.connect(settings))

    async def send(self, events: Sequence[dict[str, Any]]) -> Delivery:
        try:
            return Delivery(accepted=await self._client.publish(events))
        except BrokenError as exc:
            raise IngestUnavailable(str(exc)) from None

    async def close(self) -> None:
        await self._client.close()
