"""Reading the ``metrics`` KV bucket: one student's windows by start, the latest one, and a watch.

Keys are ``<metric>.<student_id>[.<game_id>].<window_start>`` (see :mod:`contract.names`). A window's start is a key token, not something the server can
compare, so a range query reads every current value under the student's key prefix and filters
by start here. That read is one pass of an ephemeral consumer (``LAST_PER_SUBJECT``, the server's
per-key latest), whose pending count at creation says exactly how many values make up the
snapshot, so there is no guessing when it is complete. Cost grows with the windows a student has
in the bucket, which the bucket's TTL (set by whoever creates it) bounds.

Values are handed out as the bytes the workers stored: typing them is the caller's business
(:mod:`contract.results` has the models).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from bridges.jetstream import parse_ack_subject
from bridges.public.streams import PublicStreams
from contract.names import METRIC_NAMES, METRICS_BUCKET, parse_metrics_key, require_id, require_metric
from tables.errors import BrokenError, ClosedError, ConfigError

__all__ = ["MetricEntry", "MetricsReader", "key_filters"]

log = logging.getLogger(__name__)

_STREAM = f"KV_{METRICS_BUCKET}"
_PREFIX = f"$KV.{METRICS_BUCKET}."
_DELETED = frozenset({"DEL", "PURGE"})
_SCAN_BATCH = 1000


@dataclass(frozen=True, slots=True)
class MetricEntry:
    """One current value of the bucket, with what its key says."""

    key: str
    metric: str
    student_id: str
    game_id: str | None
    window_start: int
    value: bytes
    revision: int


def _entry(msg: Msg) -> MetricEntry | None:
    headers = msg.headers
    if headers and (headers.get("KV-Operation") in _DELETED or "Nats-Marker-Reason" in headers):
        return None
    key = msg.subject[len(_PREFIX) :]
    parsed = parse_metrics_key(key)
    if parsed is None:
        return None  # not a key of the contract; someone else's business
    ack = parse_ack_subject(msg.reply) if msg.reply else None
    return MetricEntry(key, *parsed, value=msg.data, revision=ack.stream_seq if ack else 0)


def key_filters(metric: str | None, student_id: str | None, game_id: str | None = None) -> list[str]:
    """Subject filters of the bucket's stream for one metric (or all) and one student (or all)."""
    if metric is not None:
        require_metric(metric)
    student = require_id("student_id", student_id) if student_id is not None else "*"
    if game_id is not None:
        require_id("game_id", game_id)
        if metric not in (None, "outcomes"):
            raise ConfigError("game_id", game_id, f"does not apply to {metric}", kind="Argument")
    filters = []
    for name in (metric,) if metric else METRIC_NAMES:
        if name == "outcomes":
            filters.append(f"{_PREFIX}outcomes.{student}.{game_id or '*'}.*")
        elif game_id is None:
            filters.append(f"{_PREFIX}{name}.{student}.*")
    return filters


class MetricsReader:
    """Queries and watches over the ``metrics`` bucket; an async context manager.

    Args:
        client: a connected nats-py client (not owned).
        streams: the deployment's public names; the bucket is created on :meth:`start` if no
            worker created it yet, so queries answer "nothing yet" instead of failing.
        timeout: seconds one query may take.
    """

    def __init__(self, client: Client, *, streams: PublicStreams, timeout: float = 10.0) -> None:
        self._client = client
        self._streams = streams
        self._timeout = timeout
        self._started = False
        self._closed = False

    async def start(self) -> MetricsReader:
        if self._closed or self._started:
            raise ClosedError("a metrics reader can be started once")
        await self._streams.ensure_metrics_bucket(self._client.jetstream())
        self._started = True
        return self

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Idempotent; running watches end at their next value."""
        self._closed = True

    async def __aenter__(self) -> MetricsReader:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- queries --------------------------------------------------------------------------

    async def windows(
        self,
        metric: str,
        student_id: str,
        *,
        game_id: str | None = None,
        start_from: int | None = None,
        start_to: int | None = None,
        include_open: bool = False,
    ) -> list[MetricEntry]:
        """Final windows with ``start_from <= window_start < start_to`` (epoch seconds, either open).

        With ``include_open``, also the provisional values (``"final": false``) of windows still
        open, when the workers write them (``METRICS_UPDATE_SECONDS``). Ordered by window start,
        then game id (outcomes of several games share starts).
        """
        entries = await self._scan(key_filters(metric, student_id, game_id))
        selected = [
            entry
            for entry in entries
            if (start_from is None or entry.window_start >= start_from)
            and (start_to is None or entry.window_start < start_to)
            and (include_open or _is_final(entry.value))
        ]
        selected.sort(key=lambda entry: (entry.window_start, entry.game_id or ""))
        return selected

    async def latest(self, metric: str, student_id: str, *, game_id: str | None = None) -> MetricEntry | None:
        """The window with the largest start whose value says ``"final": true``, or None."""
        entries = await self.windows(metric, student_id, game_id=game_id)
        return entries[-1] if entries else None

    async def _scan(self, filters: list[str]) -> list[MetricEntry]:
        """Every current value under ``filters``: one ephemeral consumer, pulled until complete."""
        self._require_open()
        if not self._client.is_connected:
            # Fail fast: a request made while reconnecting would wait out its whole timeout.
            raise BrokenError("NATS is not connected")
        js = self._client.jetstream()
        name = f"scan-{secrets.token_hex(8)}"
        try:
            info = await js.add_consumer(
                _STREAM,
                config=ConsumerConfig(
                    name=name,
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    ack_policy=AckPolicy.NONE,
                    filter_subjects=filters,
                    mem_storage=True,
                    num_replicas=1,
                    inactive_threshold=max(5.0, self._timeout),
                ),
                timeout=self._timeout,
            )
        except APIError as exc:
            raise BrokenError(f"cannot read the {METRICS_BUCKET} bucket: {exc.description}") from None
        except Exception as exc:  # noqa: BLE001 - nats-py's timeouts and connection errors
            raise BrokenError(f"cannot read the {METRICS_BUCKET} bucket: {type(exc).__name__}") from None
        expected = info.num_pending or 0
        try:
            messages = await self._pull(name, expected) if expected else []
        finally:
            asyncio.create_task(self._delete(name), name=f"delete-{name}")
        return [entry for msg in messages if (entry := _entry(msg)) is not None]

    async def _pull(self, consumer: str, expected: int) -> list[Msg]:
        """Pull ``expected`` messages in batches; stop early if the snapshot shrank meanwhile."""
        received: list[Msg] = []
        goal = 0
        answered = asyncio.Event()
        inbox = self._client.new_inbox()
        current = ""  # each request replies on its own subject, so a status is never misread

        async def on_msg(msg: Msg) -> None:
            if not msg.reply:  # a status: the request ended (fewer messages than asked remain)
                if msg.subject == current:
                    answered.set()
            elif len(received) < expected:
                received.append(msg)
                if len(received) >= goal:
                    answered.set()

        sub = await self._client.subscribe(f"{inbox}.*", cb=on_msg, pending_msgs_limit=4 * _SCAN_BATCH)
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{_STREAM}.{consumer}"
        try:
            while len(received) < expected:
                before = len(received)
                batch = min(_SCAN_BATCH, expected - before)
                goal = before + batch
                current = f"{inbox}.{before}"
                answered.clear()
                # no_wait: values deleted or expired since the consumer was made end the request
                # at once (a status) instead of after its expiry.
                body = json.dumps({"batch": batch, "no_wait": True, "expires": int(self._timeout * 1e9)})
                await self._client.publish(subject, body.encode(), reply=current)
                try:
                    await asyncio.wait_for(answered.wait(), self._timeout)
                except TimeoutError:
                    raise BrokenError(
                        f"reading the {METRICS_BUCKET} bucket: {len(received)} of {expected} values "
                        f"within {self._timeout}s"
                    ) from None
                if len(received) == before:
                    break
        finally:
            await sub.unsubscribe()
        return received

    async def _delete(self, consumer: str) -> None:
        try:
            await self._client.jetstream().delete_consumer(_STREAM, consumer)
        except Exception:  # noqa: BLE001 - its inactive threshold removes it anyway
            log.debug("deleting scan consumer %s failed", consumer, exc_info=True)

    # -- watching -------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(
        self,
        metric: str | None = None,
        student_id: str | None = None,
        *,
        game_id: str | None = None,
        include_existing: bool = False,
        pending_limit: int = 4096,
    ) -> AsyncIterator[AsyncIterator[MetricEntry]]:
        """Values as they are written, for one metric (or all) and one student (or all)::

            async with reader.watch("engagement", "s-42") as entries:
                async for entry in entries: ...

        The watch is live once the block is entered (a value written after that is seen). With
        ``include_existing`` the current value of every matching key comes first. An ordered
        consumer carries it, so a reconnect or a server restart resumes where it was; the server
        waits for us (flow control), and at most ``pending_limit`` messages queue here. Leaving
        the block removes the consumer.
        """
        self._require_open()
        filters = key_filters(metric, student_id, game_id)
        sub = await self._client.jetstream().subscribe(
            filters[0],
            stream=_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if include_existing else DeliverPolicy.NEW,
                filter_subjects=filters if len(filters) > 1 else None,
            ),
            pending_msgs_limit=pending_limit,
        )
        try:
            yield _Entries(sub, self)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be closing
                log.debug("unsubscribing a metrics watch failed", exc_info=True)

    def _require_open(self) -> None:
        if self._closed:
            raise ClosedError("the metrics reader is closed")
        if not self._started:
            raise ClosedError("the metrics reader has not been started")


def _is_final(value: bytes) -> bool:
    try:
        document = json.loads(value)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("final") is True


class _Entries:
    """The values of one watch; ends when the watch's block is left or the reader closes."""

    def __init__(self, sub: JetStreamContext.PushSubscription, reader: MetricsReader) -> None:
        self._messages = sub.messages
        self._reader = reader

    def __aiter__(self) -> _Entries:
        return self

    async def __anext__(self) -> MetricEntry:
        while not self._reader.closed:
            msg = await anext(self._messages)  # StopAsyncIteration once unsubscribed
            entry = _entry(msg)
            if entry is not None:
                return entry
        raise StopAsyncIteration
