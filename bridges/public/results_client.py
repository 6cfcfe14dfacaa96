"""A small client for services that react to results, e.g. an adaptive-learning engine.

Two ways in, both yielding typed results::

    async with ResultsClient.connect(ConnectionSettings.from_urls(url), parse_result) as client:
        async with client.subscribe(student_id="s-42", since=an_hour_ago) as results:
            async for result in results:
                ...  # every window of s-42 that closed since then, then each new one
        async with client.watch(metric="engagement") as results:
            async for result in results:
                ...  # the current value of every engagement key, then each new one

- :meth:`ResultsClient.subscribe` reads the ``results.<metric>.<student_id>`` messages the
  workers publish when a window closes (persisted in ``<PREFIX>_RESULTS``), for one student or
  all, from now or replayed from a start time.
- :meth:`ResultsClient.watch` follows the ``metrics`` KV keys instead, which also shows the
  current state first, and the provisional values (``"final": false``) of open windows when the
  workers write them: a key's last value is its final one.

Typing is done by the ``parse`` callable, usually :func:`contract.results.parse_result`, which
reads any metric's result (typed where the metric has a refinement) and refuses only what has not
a result's shape: a value or a field a newer worker adds never makes a result skipped. A message
it refuses is logged and skipped, so one bad value does not end a subscription; ``strict=True``
raises instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Generic, TypeVar

from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from bridges.connection import ConnectionSettings, connect, disconnect
from bridges.public.metrics_reader import MetricsReader
from bridges.public.streams import PublicStreams
from contract.names import result_filter
from tables.errors import BrokenError, ConfigError, StreamsError

__all__ = ["ResultsClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ResultsClient(Generic[T]):
    """Typed access to results over one NATS connection (not owned unless from :meth:`connect`).

    Args:
        client: a connected nats-py client.
        parse: bytes -> typed result; raises ``ValueError`` for what is not a result.
        streams: the deployment's public names (its prefix names the results stream).
        strict: raise on a value ``parse`` refuses instead of logging and skipping it.
    """

    def __init__(
        self,
        client: Client,
        parse: Callable[[bytes], T],
        *,
        streams: PublicStreams = PublicStreams(),
        strict: bool = False,
    ) -> None:
        self._client = client
        self._parse = parse
        self._streams = streams
        self._strict = strict
        self._reader: MetricsReader | None = None

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        settings: ConnectionSettings,
        parse: Callable[[bytes], T],
        *,
        streams: PublicStreams = PublicStreams(),
        strict: bool = False,
    ) -> AsyncIterator[ResultsClient[T]]:
        """Open a connection for the client and drain it when the block ends."""
        client = await connect(settings, name=f"{settings.name}:results-client")
        try:
            yield cls(client, parse, streams=streams, strict=strict)
        finally:
            await disconnect(client)

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        metric: str | None = None,
        student_id: str | None = None,
        since: datetime | None = None,
        pending_limit: int = 4096,
        version: int | None = None,
    ) -> AsyncIterator[AsyncIterator[T]]:
        """Results as windows close; with ``since`` (aware), first those published since then.

        Live once the block is entered. An ordered consumer carries the results: in order,
        resumed after a reconnect, the server held back by flow control when this side is slow.
        Leaving the block removes it. A named ``metric`` is read in one version: ``version``, or
        the default one when the subscription starts (the newest complete, see
        :mod:`contract.registry`); without a metric, every version of every metric is.
        """
        if metric is not None:
            metric = await (await self._metrics_reader()).series(metric, version)
        elif version is not None:
            raise ConfigError("version", version, "selects a version of one metric: name it", kind="Argument")
        subjects = result_filter(metric, student_id)
        if since is not None and since.utcoffset() is None:
            raise ConfigError("since", since, "must be timezone-aware", kind="Argument")
        js = self._client.jetstream()
        await self._streams.ensure_results(js)
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME if since is not None else DeliverPolicy.NEW,
            opt_start_time=since,
        )
        try:
            sub = await js.subscribe(
                subjects,
                stream=self._streams.results,
                ordered_consumer=True,
                config=config,
                pending_msgs_limit=pending_limit,
            )
        except APIError as exc:
            raise BrokenError(f"cannot subscribe to results: {exc.description}") from None
        try:
            yield _Typed(sub.messages, lambda msg: (msg.data, msg.subject), self._typed)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribing a results subscription failed", exc_info=True)

    @asynccontextmanager
    async def watch(
        self,
        *,
        metric: str | None = None,
        student_id: str | None = None,
        parts: Mapping[str, str] | None = None,
        include_existing: bool = True,
        version: int | None = None,
    ) -> AsyncIterator[AsyncIterator[T]]:
        """Values written to the ``metrics`` keys; with ``include_existing`` the current ones first.

        Every metric's keys, a metric started after the watch too; ``parts`` narrows one metric's
        later key fields (``{"game_id": "g1"}``); a named metric is watched in one version, as
        :meth:`subscribe` reads it."""
        reader = await self._metrics_reader()
        async with reader.watch(
            metric, student_id, parts=parts, include_existing=include_existing, version=version
        ) as entries:
            yield _Typed(entries, lambda entry: (entry.value, entry.key), self._typed)

    async def _metrics_reader(self) -> MetricsReader:
        """The reader of the ``metrics`` bucket and the registry, started on first use."""
        if self._reader is None:
            self._reader = await MetricsReader(self._client, streams=self._streams).start()
        return self._reader

    def _typed(self, raw: bytes, where: str) -> T | None:
        try:
            return self._parse(raw)
        except (StreamsError, ValueError) as exc:
            if self._strict:
                raise
            log.warning("skipping a value of %s that is not a result: %s", where, exc)
            return None


S = TypeVar("S")


class _Typed(Generic[S, T]):
    """Typed results from raw items; what ``parse`` refuses is skipped (or raised, if strict)."""

    def __init__(
        self,
        items: AsyncIterator[S],
        raw: Callable[[S], tuple[bytes, str]],
        typed: Callable[[bytes, str], T | None],
    ) -> None:
        self._items = items
        self._raw = raw
        self._typed = typed

    def __aiter__(self) -> _Typed[S, T]:
        return self

    async def __anext__(self) -> T:
        while True:
            data, where = self._raw(await anext(self._items))
            result = self._typed(data, where)
            if result is not None:
                return result
