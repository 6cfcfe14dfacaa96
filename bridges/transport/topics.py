"""Topics on JetStream: one stream per partition, and a registry of partition counts.

A faust topic's partition count must be known synchronously (``topic_partitions``,
``key_partition``), and it must be the same for every worker and every producer, so it is stored
once in a KV bucket when the topic is created and cached in each process.

Offsets follow Kafka's semantics on top of stream sequences (1-based):
``earliest`` is the first sequence still stored (``last + 1`` when empty) and ``highwater`` is
``last + 1``. For a compacting topic the fence markers do not count: its highwater is one past
the last *data* message, because faust's recovery waits until it has seen ``highwater - 1``.

Every topic is bounded (:meth:`TopicSpec.limits`): an ordinary topic by age, a compacting one by
bytes (its latest value per key is a table's state, which no age may take away). Declaring a
topic that exists applies the declared limits to its streams in place (see
:func:`~bridges.jetstream.ensure_stream`): a setting changed and a process restarted is all it
takes. The registry records a topic's layout; its streams hold its limits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from bridges.jetstream import bounded_duplicate_window, ensure_bucket, ensure_stream
from bridges.limits import DAY, GIB, UNLIMITED, Limits
from bridges.naming import Naming
from tables.errors import BrokenError, ConfigError

__all__ = ["DEFAULT_CHANGELOG_MAX_BYTES", "DEFAULT_TOPIC_RETENTION", "TopicRegistry", "TopicSpec"]

log = logging.getLogger(__name__)

#: Long enough for any retry of a publish to be recognised as a duplicate (capped at a stream's
#: max age, which JetStream requires).
DEFAULT_DUPLICATE_WINDOW = 120.0
#: How long an ordinary topic keeps messages unless told otherwise.
DEFAULT_TOPIC_RETENTION: Final = 7 * DAY
#: The byte cap of each partition of a compacting topic unless told otherwise. Its latest value
#: per key is a table's state and has no age limit; the cap keeps a runaway table from filling
#: the store (a full changelog refuses writes: see TopicRegistry._stream_config). JetStream
#: reserves every stream's cap in the server's store when the stream is made, so the caps of all
#: partitions of all changelogs must fit in it together: 1 GiB each is 24 GiB for three tables of
#: 8 partitions.
DEFAULT_CHANGELOG_MAX_BYTES: Final = GIB
#: What TopicSpec.to_json writes: the fields every version of the registry reads (an older
#: process builds a TopicSpec from all the keys it finds, so a new key would break it).
_STORED_FIELDS: Final = (
    "name", "partitions", "compacting", "max_per_key", "retention", "replicas", "duplicate_window"
)


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is laid out on JetStream (stored in the registry as JSON)."""

    name: str
    partitions: int
    compacting: bool = False
    #: messages kept per key in a compacting topic (2 lets a changelog keep the previous value)
    max_per_key: int = 1
    #: seconds a message is kept (Kafka's ``deleting`` retention); None: the default of its kind,
    #: DEFAULT_TOPIC_RETENTION for an ordinary topic and no age limit for a compacting one
    retention: float | None = None
    replicas: int = 1
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    #: bytes each partition keeps at most (-1: no byte limit); None: the default of its kind,
    #: no byte limit for an ordinary topic and DEFAULT_CHANGELOG_MAX_BYTES for a compacting one
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError("partitions", self.partitions, "must be >= 1", kind="Topic")
        if self.max_per_key < 1:
            raise ConfigError("max_per_key", self.max_per_key, "must be >= 1", kind="Topic")
        if self.replicas not in (1, 3, 5):
            raise ConfigError("replicas", self.replicas, "must be 1, 3 or 5", kind="Topic")
        self.limits()  # refuses a topic without a bound

    def limits(self) -> Limits:
        """The bound of each partition stream, with the defaults of the topic's kind filled in."""
        if self.compacting:
            max_bytes = DEFAULT_CHANGELOG_MAX_BYTES if self.max_bytes is None else self.max_bytes
            return Limits(self.retention or 0.0, max_bytes)
        retention = DEFAULT_TOPIC_RETENTION if self.retention is None else self.retention
        return Limits(retention, UNLIMITED if self.max_bytes is None else self.max_bytes)

    @property
    def ages_out(self) -> bool:
        """Messages go by age. A compacting topic's fence marker must then outlive its max age:
        it is published with ``Nats-TTL: never``, which the stream allows (see _stream_config)."""
        return self.limits().max_age > 0

    def to_json(self) -> bytes:
        stored = {name: value for name, value in asdict(self).items() if name in _STORED_FIELDS}
        return json.dumps(stored, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TopicSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in json.loads(raw).items() if name in fields})


class TopicRegistry:
    """Creates topics and answers partition counts and offsets for them."""

    def __init__(self, js: JetStreamContext, naming: Naming, *, replicas: int = 1) -> None:
        self._js = js
        self._naming = naming
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._specs: dict[str, TopicSpec] = {}
        #: the spec whose limits this process last applied to each topic's streams
        self._applied: dict[str, TopicSpec] = {}

    async def start(self) -> None:
        self._kv = await ensure_bucket(
            self._js, self._naming.topics_bucket, replicas=self._replicas
        )

    @property
    def naming(self) -> Naming:
        return self._naming

    # -- declaring ------------------------------------------------------------------------

    async def declare(self, spec: TopicSpec) -> TopicSpec:
        """Create the topic's streams and register it, or apply ``spec``'s limits to an existing one.

        Creating the streams before registering means a registered topic always has all its
        streams. A topic registered earlier keeps its layout (partitions, compaction: its data is
        laid out by them; a warning says so when asked for another count) and takes ``spec``'s
        limits, changed in place on each stream whose limits differ. Returns the topic as it now is.
        """
        existing = await self.lookup(spec.name)
        if existing is None:
            return await self._create(spec)
        if existing.partitions != spec.partitions:
            log.warning(
                "topic %r exists with %d partitions; asked for %d, keeping %d",
                spec.name, existing.partitions, spec.partitions, existing.partitions,
            )
        if existing.compacting != spec.compacting:
            # Limits meant for the other kind (an age for a table's state, say) are not applied.
            log.warning(
                "topic %r exists %scompacting; asked for the other kind, keeping it and its limits",
                spec.name, "" if existing.compacting else "not ",
            )
            return existing
        wanted = dataclasses.replace(
            existing, retention=spec.retention, max_bytes=spec.max_bytes, duplicate_window=spec.duplicate_window
        )
        # faust declares its internal topics again at every rebalance: once per process is enough.
        if self._applied.get(spec.name) != wanted:
            await self._ensure_streams(wanted)
            self._applied[spec.name] = self._specs[spec.name] = wanted
        return wanted

    async def _create(self, spec: TopicSpec) -> TopicSpec:
        await self._ensure_streams(spec)
        try:
            await self._bucket().create(self._naming.topic_key(spec.name), spec.to_json())
        except KeyWrongLastSequenceError:
            # Declared concurrently by another process: theirs is now the truth.
            winner = await self.lookup(spec.name, refresh=True)
            assert winner is not None
            return winner
        self._specs[spec.name] = self._applied[spec.name] = spec
        log.info("created topic %r with %d partitions", spec.name, spec.partitions)
        return spec

    async def _ensure_streams(self, spec: TopicSpec) -> None:
        await asyncio.gather(
            *(ensure_stream(self._js, self._stream_config(spec, p)) for p in range(spec.partitions))
        )

    def _stream_config(self, spec: TopicSpec, partition: int) -> StreamConfig:
        naming = self._naming
        limits = spec.limits()
        return StreamConfig(
            name=naming.stream(spec.name, partition),
            subjects=naming.stream_subjects(spec.name, partition, spec.compacting),
            retention=RetentionPolicy.LIMITS,
            # A full changelog refuses writes (the worker stops and says why) instead of dropping
            # its oldest messages: those are table state - a key's only value, or the fence.
            discard=DiscardPolicy.NEW if spec.compacting else DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=spec.replicas,
            max_age=limits.max_age,
            max_bytes=limits.max_bytes,
            max_msgs_per_subject=spec.max_per_key if spec.compacting else -1,
            # faust's windowed changelogs keep messages for `expires`, which may be 1 s.
            duplicate_window=bounded_duplicate_window(spec.duplicate_window, limits.max_age),
            # The fence must stay however long its owner keeps the partition: per-message TTLs let
            # it say "never" while the table's records age out (JetStream >= 2.11, as the leases).
            allow_msg_ttl=True if spec.compacting and spec.ages_out else None,
            allow_direct=True,
        )

    async def delete(self, topic: str) -> bool:
        """Remove ``topic``: its registration first (a process declaring it again then creates it
        whole), then its streams. False when no such topic is registered."""
        spec = await self.lookup(topic, refresh=True)
        if spec is None:
            return False
        await self._bucket().purge(self._naming.topic_key(topic))
        self._specs.pop(topic, None)
        self._applied.pop(topic, None)
        for partition in range(spec.partitions):
            try:
                await self._js.delete_stream(self._naming.stream(topic, partition))
            except NotFoundError:
                pass  # removed already (a removal run twice, or by hand)
        log.info("deleted topic %r (%d partitions)", topic, spec.partitions)
        return True

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
