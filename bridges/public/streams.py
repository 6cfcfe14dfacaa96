"""The public NATS names of the learning contract (issue 5) and the streams and bucket behind them.

Other teams code against these names, so they are spelled exactly as the contract says, without
the deployment prefix that faust's own subjects carry::

    events.<type>.<student_id>          any client publishes an event here (core or JetStream)
    deadletter.invalid                  events that failed validation, the reason in a header
    results.<metric>.<student_id>       a window's result, published when it closes
    KV bucket "metrics"                 <metric>.<key parts>.<window_start>

(:mod:`contract.names` spells the metric's subjects and keys, :mod:`contract.registry` the metrics.)

The streams that store the subjects are ours to name, so they carry the prefix:
``<PREFIX>_INGEST`` (``events.>``, a work queue the web processes share),
``<PREFIX>_DEADLETTER`` (``deadletter.>``) and ``<PREFIX>_RESULTS`` (``results.>``).
Each of them and the bucket is bounded by :class:`PublicLimits` (the ``*_RETENTION``,
``METRICS_TTL`` and ``*_MAX_BYTES`` settings).

Ids become subject tokens and key parts, so :func:`require_id` admits only the contract's id
characters: an id holding ``*``, ``>`` or ``.`` would address other subjects or keys.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.kv import KeyValue

from bridges.jetstream import ensure_bucket, ensure_stream
from bridges.limits import DAY, Limits
from bridges.naming import Naming
from tables.errors import ConfigError

__all__ = [
    "DEADLETTER_INVALID",
    "INGEST_CONSUMER",
    "MAX_KEY_FIELDS",
    "METRICS_BUCKET",
    "PublicLimits",
    "PublicStreams",
    "ingest_subject",
    "republishing_results",
    "require_id",
]

DEADLETTER_INVALID: Final = "deadletter.invalid"
METRICS_BUCKET: Final = "metrics"
#: the durable consumer every web process pulls from, which is what splits the work between them
INGEST_CONSUMER: Final = "web-ingest"

_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_ID_RULE: Final = "must be 1-64 characters of A-Z a-z 0-9 _ -"
# Prefixes whose faust subjects (<prefix>.<topic>.<p>) would fall inside a public stream's subjects.
_RESERVED_PREFIXES: Final = frozenset({"events", "deadletter", "results"})


def require_id(field: str, value: str) -> str:
    """``value`` if it is a valid student or game id, else :class:`ConfigError` naming ``field``."""
    if type(value) is not str or not _ID.fullmatch(value):
        raise ConfigError(field, value, _ID_RULE, kind="Argument")
    return value


def ingest_subject(type_: str, student_id: str) -> str:
    """Where a producer publishes one event over NATS."""
    return f"events.{type_}.{require_id('student_id', student_id)}"


@dataclass(frozen=True)
class PublicLimits:
    """The bound of each public stream and of the bucket (the defaults are the settings').

    ``metrics.max_age`` is the bucket's TTL: a window's value is deleted that long after its
    last write.
    """

    ingest: Limits = Limits(7 * DAY)
    results: Limits = Limits(7 * DAY)
    deadletter: Limits = Limits(14 * DAY)
    metrics: Limits = Limits(90 * DAY)

    def __post_init__(self) -> None:
        if self.metrics.max_age == 0:
            # The TTL is what deletes a window's value; bytes alone would refuse new finals instead.
            raise ConfigError("METRICS_TTL", 0, "must be > 0")


#: the longest key a metric may have and still be republished: its key fields, at most. Every
#: stored result carries the mappings in its ``Nats-Stream-Source`` header (about 75 bytes each),
#: so they are kept to what metrics use: a student, a game, an activity, a level
MAX_KEY_FIELDS: Final = 4


def _finals_to_results() -> list[SubjectTransform]:
    # A KV key is <series>.<key parts>.<start>; its result subject keeps the series and the first
    # key part. A transform maps one token count, so there is one per number of key fields.
    return [
        SubjectTransform(
            src=f"$KV.{METRICS_BUCKET}." + ".".join(["*"] * (fields + 2)),
            dest="results.{{wildcard(1)}}.{{wildcard(2)}}",
        )
        for fields in range(1, MAX_KEY_FIELDS + 1)
    ]


_FINALS_TO_RESULTS: Final = _finals_to_results()


def republishing_results(config: StreamConfig) -> bool:
    """Whether a results stream is fed by the server from the ``metrics`` bucket.

    Such a stream sources the bucket's stream, mapping each KV key to its result subject, and
    republishes what it stores on that subject for core subscribers: a worker writes a final once,
    to KV, and subscribers see it on ``results.<series>.<first key part>``, stored in the results
    stream and delivered to core subscriptions as before. Provisional values share their final's
    key, so with them (``METRICS_UPDATE_SECONDS``) the workers publish finals themselves instead.
    """
    return any(source.name == f"KV_{METRICS_BUCKET}" for source in config.sources or [])


@dataclass(frozen=True)
class PublicStreams:
    """The public streams and bucket of one deployment, created idempotently.

    Workers and web processes call the ``ensure_*`` methods at start; whoever comes first
    creates, the rest reuse. With ``update_limits`` (the processes that own the settings: the
    workers and the web process) an existing stream or bucket whose limits differ from ``limits``
    is changed in place and the change logged; without it (readers, tools) it is used as it is.
    """

    prefix: str = "faust"
    replicas: int = 1
    limits: PublicLimits = PublicLimits()
    update_limits: bool = False
    #: a results stream created here is fed by the server from the ``metrics`` bucket (each final
    #: written once, by the worker, to KV; see :meth:`results_config`); False: by the workers'
    #: own publishes on the result subjects
    republish: bool = False

    def __post_init__(self) -> None:
        Naming(self.prefix)  # the same prefix rule as every other name of the deployment
        if self.prefix in _RESERVED_PREFIXES:
            raise ConfigError(
                "NATS_PREFIX", self.prefix, "would put faust's subjects inside the public "
                f"'{self.prefix}.>' subjects; choose another prefix",
            )
        if self.replicas not in (1, 3, 5):
            raise ConfigError("NATS_REPLICAS", self.replicas, "must be 1, 3 or 5")

    @property
    def ingest(self) -> str:
        return f"{self.prefix.upper()}_INGEST"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix.upper()}_DEADLETTER"

    @property
    def results(self) -> str:
        return f"{self.prefix.upper()}_RESULTS"

    def ingest_config(self) -> StreamConfig:
        # A work queue: a message leaves the stream once a web process acked it, after which the
        # event lives in the events topic. The default week of retention rides out any outage of
        # the web processes. No max_msg_size: an oversize event must reach us to be
        # dead-lettered, a core publish refused by the stream would vanish without a trace.
        return self._config(self.ingest, "events.>", RetentionPolicy.WORK_QUEUE, self.limits.ingest)

    def deadletter_config(self) -> StreamConfig:
        return self._config(self.deadletter, "deadletter.>", RetentionPolicy.LIMITS, self.limits.deadletter)

    def results_config(self) -> StreamConfig:
        """The results stream: with :attr:`republish`, fed by the server from the ``metrics``
        bucket (see :func:`republishing_results`); else it stores what is published on
        ``results.>``."""
        config = self._config(self.results, "results.>", RetentionPolicy.LIMITS, self.limits.results)
        if not self.republish:
            return config
        return dataclasses.replace(
            config,
            subjects=[],
            sources=[StreamSource(name=f"KV_{METRICS_BUCKET}", subject_transforms=_FINALS_TO_RESULTS)],
            republish=RePublish(src="results.>", dest="results.>"),
        )

    def _config(self, name: str, subject: str, retention: RetentionPolicy, limits: Limits) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=[subject],
            retention=retention,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            max_age=limits.max_age,
            max_bytes=limits.max_bytes,
            allow_direct=True,
        )

    async def ensure_ingest(self, js: JetStreamContext) -> None:
        await ensure_stream(js, self.ingest_config(), update_limits=self.update_limits)

    async def ensure_deadletter(self, js: JetStreamContext) -> None:
        await ensure_stream(js, self.deadletter_config(), update_limits=self.update_limits)

    async def ensure_results(self, js: JetStreamContext) -> bool:
        """Create the results stream if missing; whether the server feeds it from the ``metrics``
        bucket (:func:`republishing_results`), as the stream that exists says, whoever made it."""
        if self.republish:
            await self.ensure_metrics_bucket(js)  # the source must exist first
        await ensure_stream(js, self.results_config(), update_limits=self.update_limits)
        return republishing_results((await js.stream_info(self.results)).config)

    async def counts(self, js: JetStreamContext) -> tuple[int, dict[str, int]]:
        """Results published so far, and the dead-letter stream's message count per subject."""
        await self.ensure_results(js)
        await self.ensure_deadletter(js)
        results = await js.stream_info(self.results)
        letters = await js.stream_info(self.deadletter, subjects_filter="deadletter.>")
        return int(results.state.messages), dict(letters.state.subjects or {})

    async def ensure_metrics_bucket(self, js: JetStreamContext) -> KeyValue:
        """The ``metrics`` bucket: one value per key (a window's latest), direct gets on."""
        limits = self.limits.metrics
        return await ensure_bucket(
            js, METRICS_BUCKET, history=1, replicas=self.replicas, ttl=limits.max_age,
            max_bytes=limits.max_bytes, update_limits=self.update_limits,
        )
