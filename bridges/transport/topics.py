"""Topics on JetStream: one stream per partition, and a registry of partition counts.

A faust topic's partition count must be known synchronously (``topic_partitions``,
``key_partition``), and it must be the same for every worker and every producer, so it is stored
once in a KV bucket when the topic is created and cached in each process.

Offsets follow Kafka's semantics on top of stream sequences (1-based):
``earliest`` is the first sequence still stored (``last + 1`` when empty) and ``highwater`` is
``last + 1``. For a compacting topic the fence markers do not count: its highwater is one past
the last *data* message, because faust's recovery waits until it has seen ``highwater - 1``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from bridges.jetstream import ensure_bucket, ensure_stream
from bridges.naming import Naming
from tables.errors import BrokenError, ConfigError

__all__ = ["TopicRegistry", "TopicSpec"]

log = logging.getLogger(__name__)

#: Long enough for any retry of a publish to be recognised as a duplicate.
DEFAULT_DUPLICATE_WINDOW = 120.0


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is laid out on JetStream (stored in the registry as JSON)."""

    name: str
    partitions: int
    compacting: bool = False
    #: messages kept per key in a compacting topic (2 lets a changelog keep the previous value)
    max_per_key: int = 1
    #: seconds a message is kept (None: forever; Kafka's ``deleting`` retention)
    retention: float | None = None
    replicas: int = 1
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError("partitions", self.partitions, "must be >= 1", kind="Topic")
        if self.max_per_key < 1:
            raise ConfigError("max_per_key", self.max_per_key, "must be >= 1", kind="Topic")
        if self.replicas not in (1, 3, 5):
            raise ConfigError("replicas", self.replicas, "must be 1, 3 or 5", kind="Topic")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TopicSpec:
        return cls(**json.loads(raw))


class TopicRegistry:
    """Creates topics and answers partition counts and offsets for them."""

    def __init__(self, js: JetStreamContext, naming: Naming, *, replicas: int = 1) -> None:
        self._js = js
        self._naming = naming
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._specs: dict[str, TopicSpec] = {}

    async def start(self) -> None:
        self._kv = await ensure_bucket(
            self._js, self._naming.topics_bucket, replicas=self._replicas
        )

    @property
    def naming(self) -> Naming:
        return self._naming

    # -- declaring ------------------------------------------------------------------------

    async def declare(self, spec: TopicSpec) -> TopicSpec:
        """Create the topic's streams and register it; an existing topic is returned as it is.

        Creating the streams before registering means a registered topic always has all its
        streams. A topic registered earlier with another partition count keeps its count (its
        data is laid out by it); a warning says so.
        """
        existing = await self.lookup(spec.name)
        if existing is not None:
            if existing.partitions != spec.partitions:
                log.warning(
                    "topic %r exists with %d partitions; asked for %d, keeping %d",
                    spec.name, existing.partitions, spec.partitions, existing.partitions,
                )
            return existing
        await asyncio.gather(
            *(ensure_stream(self._js, self._stream_config(spec, p)) for p in range(spec.partitions))
        )
        try:
            await self._bucket().create(self._naming.topic_key(spec.name), spec.to_json())
        except KeyWrongLastSequenceError:
            # Declared concurrently by another process: theirs is now the truth.
            winner = await self.lookup(spec.name, refresh=True)
            assert winner is not None
            return winner
        self._specs[spec.name] = spec
        log.info("created topic %r with %d partitions", spec.name, spec.partitions)
        return spec

    def _stream_config(self, spec: TopicSpec, partition: int) -> StreamConfig:
        naming = self._naming
        return StreamConfig(
            name=naming.stream(spec.name, partition),
            subjects=naming.stream_subjects(spec.name, partition, spec.compacting),
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=spec.replicas,
            max_age=spec.retention or 0,
            max_msgs_per_subject=spec.max_per_key if spec.compacting else -1,
            duplicate_window=spec.duplicate_window,
            allow_direct=True,
        )

    # -- looking up -----------------------------------------------------------------------

    def cached(self, topic: str) -> TopicSpec | None:
        return self._specs.get(topic)

    async def lookup(self, topic: str, *, refresh: bool = False) -> TopicSpec | None:
        if not refresh and topic in self._specs:
            return self._specs[topic]
        try:
            entry = await self._bucket().get(self._naming.topic_key(topic))
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        spec = TopicSpec.from_json(entry.value)
        self._specs[topic] = spec
        return spec

    async def lookup_many(self, topics: Iterable[str]) -> dict[str, TopicSpec]:
        names = sorted(set(topics))
        specs = await asyncio.gather(*(self.lookup(name) for name in names))
        return {name: spec for name, spec in zip(names, specs, strict=True) if spec is not None}

    # -- offsets --------------------------------------------------------------------------

    async def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """``(earliest, highwater)`` of one partition, in Kafka's sense (see module docstring)."""
        spec = self._specs.get(topic) or await self.lookup(topic)
        if spec is None:
            raise BrokenError(f"topic {topic!r} is not registered")
        stream = self._naming.stream(topic, partition)
        try:
            info = await self._js.stream_info(stream)
        except NotFoundError:
            raise BrokenError(f"stream {stream} of topic {topic!r} is missing") from None
        first, last = info.state.first_seq, info.state.last_seq
        if info.state.messages == 0:
            return last + 1, last + 1
        if not spec.compacting:
            return first, last + 1
        last_data = await self._last_data_seq(spec, partition)
        if last_data is None:
            return last + 1, last + 1
        return first, last_data + 1

    async def _last_data_seq(self, spec: TopicSpec, partition: int) -> int | None:
        stream = self._naming.stream(spec.name, partition)
        data_filter = self._naming.data_filter(spec.name, partition, True)
        try:
            msg = await self._js.get_last_msg(stream, data_filter)
        except NotFoundError:
            return None
        return int(msg.seq) if msg.seq is not None else None

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise BrokenError("the topic registry has not been started")
        return self._kv
