"""faust's Consumer on JetStream.

Partitions come from the group coordinator (:mod:`bridges.group`), messages from the readers of
the assigned partitions (:mod:`bridges.transport.partition_readers`), and committed offsets go to
the KV offset store with compare-and-set; records reach faust through the fetch loop of
:mod:`bridges.transport.fetching`. A rebalance is cooperative (step 4 of
:mod:`bridges.group.coordinator`; what moves: :mod:`bridges.transport.handover`), in the order
faust's aiokafka driver follows for what does move: ``app.on_rebalance_start()``, revoke what is
lost (drained and committed), set the generation, ``assignor.on_assignment()``, then
``on_partitions_assigned`` with the whole new assignment (faust tells kept from new itself). A
member whose partitions do not change leaves faust alone.

The stream partitions a member keeps flow on meanwhile (:mod:`bridges.transport.kept_flow`):
faust would pause them all, clear their queued records and rewind them to the committed offset
once the gained partitions' tables are recovered. Here they are not paused
(:meth:`pause_partitions`), their queued records are spared, they are not rewound
(:meth:`seek_to_committed`), and faust's generation stays the same (its streams skip records of
an older one); a revoke stops and commits only the lost partitions (``_drain_lost``). The active
changelogs the member keeps are not read back by the recovery either (:meth:`highwaters`):
their writer goes on writing them, and its state is ahead of what it would read. A member
that keeps no stream partition, or whose flow is stopped, rebalances as faust does (all paused,
drained, rewound).

A partition being revoked stays in :meth:`assignment` until its revocation has finished, because
faust drops commits for partitions outside the assignment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, cast

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.exceptions import ImproperlyConfigured
from faust.types import TP
from mode.utils.times import want_seconds

from bridges.group import FaustAssigner, GroupCoordinator, GroupSettings
from bridges.transport.commit_retry import CommitRetry
from bridges.transport.committing import CommittingConsumer
from bridges.transport.handover import Handover, Holding
from bridges.transport.kept_flow import KeptFlow
from bridges.transport.offsets import OffsetStore, PartitionRef
from bridges.transport.partition_readers import PartitionReaders
from bridges.transport.producer import create_topic
from bridges.transport.reader import ReaderConfig
from bridges.transport.session import Fence, TransportSession, partition_for_key
from bridges.transport.state_owners import StateOwners
from tables.errors import ClosedError, StorageFull

__all__ = ["Consumer"]

log = logging.getLogger(__name__)


class Consumer(CommittingConsumer):
    """Consumer for the ``nats://`` transport; its fetch loop is :class:`FetchingConsumer`'s."""

    consumer_stopped_errors: ClassVar[tuple[type[BaseException], ...]] = (ClosedError,)

    def __post_init__(self) -> None:
        if self.app.conf.processing_guarantee.value == "exactly_once":
            raise ImproperlyConfigured(
                "processing_guarantee='exactly_once' needs Kafka transactions; the nats:// "
                "transport provides at-least-once (use the windowed tables for exactly-once "
                "results in effect)"
            )
        self._session: TransportSession = cast(Any, self.transport).session
        self._subscription: set[str] = set()
        self._assignment: set[TP] = set()
        #: the changelog partitions held as an active (fenced, written); the others are standbys
        self._actives: set[TP] = set()
        #: whether faust's rebalance has begun (a revoke, or a drain) and awaits its assignment
        self._faust_rebalancing = False
        #: state (windowed tables) flushed before each commit and asked where to resume
        self._state = StateOwners()
        #: where each assigned partition started (committed offset, or the reset position)
        self._start_offsets: dict[TP, int] = {}
        #: newly assigned stream partitions not yet positioned by faust's seek_to_committed:
        #: faust resumes partitions *before* that seek, and anything handed out in between
        #: would be dropped by its streams or delivered twice after the rewind
        self._awaiting_seek: set[TP] = set()
        #: partitions seek_to_committed positioned, held until faust resumes its flow
        self._positioned: set[TP] = set()
        #: set when the group lease was lost; the next revoke then drops every partition's state
        self._membership_lost = False
        #: offsets of declined commits, and the pauses while the store is full
        self._retry: CommitRetry[TP] = CommitRetry(self._session.storage, time.monotonic)
        #: the refusal of the offset commit under way, when for lack of room
        self._refused_for_room: StorageFull | None = None
        #: whether the commit under way got as far as committing offsets (see _commit_tps)
        self._commit_attempted = False
        #: the commits under way, each a task of its own (see CommittingConsumer.commit)
        self._commits: set[asyncio.Future[bool]] = set()
        self._offsets: OffsetStore | None = None
        self._coordinator: GroupCoordinator | None = None
        options = self._session.options
        #: the stream partitions kept flowing through the rebalance under way
        self._kept_flow = KeptFlow(
            self.app.flow_control, recovery_queue=lambda: getattr(self.app.tables, "_changelog_queue", None)
        )
        #: partitions that hand out nothing for now (see FetchingConsumer._withheld)
        self._withheld: set[TP] = set()
        #: the active changelog partitions kept through the rebalance under way, still written
        self._written: set[TP] = set()
        self._readers = PartitionReaders(
            self._session, ReaderConfig(
                batch=options.fetch_batch, capacity=options.fetch_capacity, max_bytes=options.fetch_max_bytes
            )
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self._session.acquire()
        self._session.on_reconnected(self._on_reconnected)
        group = self.app.conf.id
        self._offsets = OffsetStore(
            self._session.js, self._session.naming, group, replicas=self._session.options.replicas
        )
        await self._offsets.start()
        if not self.app.client_only:
            options = self._session.options
            self._coordinator = GroupCoordinator(
                self._session.client,
                self._session.settings,
                self._session.naming,
                group,
                listener=_Listener(self),
                assigner=FaustAssigner(self.app.assignor, self._partition_counts),
                settings=GroupSettings(
                    session_timeout=options.session_timeout,
                    rebalance_delay=options.rebalance_delay,
                    rebalance_timeout=float(self.app.conf.broker_rebalance_timeout),
                    replicas=options.replicas,
                ),
            )
            # Writes no server-side fence covers (final results) check this membership's lease.
            self._session.lease = self._coordinator.lease
            await self._coordinator.start()

    async def on_stop(self) -> None:
        await super().on_stop()  # faust commits what it can here
        if self._coordinator is not None:
            await self._coordinator.stop()
        await self._readers.close(self._readers)
        await self._session.release()

    def close(self) -> None:
        """Called by faust when a rebalance arrives after the app started stopping."""

    @property
    def member_id(self) -> str | None:
        return self._coordinator.member_id if self._coordinator else None

    @property
    def group_generation(self) -> int:
        """The generation of the group assignment this member holds (0: none). Not faust's
        ``consumer_generation_id``, which a cooperative rebalance leaves as it is."""
        return self._coordinator.generation if self._coordinator else 0

    # -- subscription and rebalancing -----------------------------------------------------

    async def subscribe(self, topics: Iterable[str]) -> None:
        self._subscription = set(topics)
        await self._declare_missing(self._subscription)
        if self._coordinator is not None:
            await self._coordinator.update_subscription()
        else:
            # client-only: read every partition of the subscribed topics, no group
            specs = await self._session.registry.lookup_many(self._subscription)
            tps = {TP(t, p) for t, spec in specs.items() for p in range(spec.partitions)}
            await self._take(tps, generation=0)
            await self.on_partitions_assigned(set(self._assignment), 0)

    async def _declare_missing(self, topics: set[str]) -> None:
        """Create subscribed topics that do not exist yet, as Kafka's auto-create would, and bring
        existing source topics to the retention they are declared with.

        faust declares its internal topics (changelogs, the assignor's) itself before subscribing,
        with their own retention: they are left to it. An agent's source topic is declared here
        with the partition count and retention faust has for it (the transport's options when it
        has none); an existing one keeps its partition count and takes the retention in place.
        """
        if not self.app.conf.topic_allow_declare:
            return
        known = await self._session.registry.lookup_many(topics)
        channels = {name: channel for channel in self.app.topics for name in getattr(channel, "topics", ())}
        for topic in sorted(topics):
            channel = channels.get(topic)
            existing = known.get(topic)
            if existing is not None and (existing.compacting or getattr(channel, "internal", False)):
                continue
            retention = getattr(channel, "retention", None)
            await self._session.declare_topic(
                topic, getattr(channel, "partitions", None) or self.app.conf.topic_partitions,
                compacting=False, retention=want_seconds(retention) if retention else None,
            )

    async def _revoke(self, following: Holding | None) -> None:
        """Give up what ``following`` (the next assignment; None: nothing) does not keep.

        The revoke is for the lost partitions only; a member that loses nothing skips it, and
        what it holds flows on (step 4a of :mod:`bridges.group.coordinator`). While stream
        partitions are kept flowing, faust's revoke (which stops them all) is replaced by
        ``_drain_lost`` and ``_forget``.
        """
        handover = Handover.between(self._holding(), following or Holding.nothing(), self._changelogs())
        lost = handover.lost
        if following is not None and not lost:
            return
        self._start_rebalance()
        spared = self._flowing_through(handover) if following is not None else frozenset()
        self._kept_flow.keep(spared)
        if spared:
            await self._drain_lost(lost, spared)
            await self._forget(lost)
        else:
            if lost and not self._membership_lost:
                await self._drain()
            await self.on_partitions_revoked(set(lost))
        if not self.app.conf.stream_wait_empty and lost:
            await self.commit_and_end_transactions()
        # Only now may the partitions leave the assignment (faust drops other commits).
        self._assignment -= lost
        self._actives -= lost
        for tp in lost:
            self._start_offsets.pop(tp, None)
            self._session.fences.pop((tp.topic, tp.partition), None)
        if self._offsets is not None:
            self._offsets.release(PartitionRef(tp.topic, tp.partition) for tp in lost)
        await self._readers.close(lost)
        self._withheld -= lost
        if self._membership_lost:
            # Others may have processed what this worker held while it was cut off, so its
            # in-memory state is stale. faust would keep the state of partitions a new
            # assignment gives back ("kept", not revoked), so the tables are told now that all
            # of it is revoked: they drop it, and the next assignment recovers it from the
            # changelogs. (Not through faust's own rebalance with an empty assignment: the
            # recovery that starts races the next assignment's.)
            self._membership_lost = False
            for table in self.app.tables.values():
                await table.on_rebalance(set(), set(lost), set(), self.app.consumer_generation_id)

    async def _assign(self, generation: int, raw: bytes) -> None:
        """Hold the partitions of ``raw``: take the new ones, and let faust take the assignment.

        Nothing to take and nothing given up since the last assignment: faust is left alone, so
        the kept partitions flow on, and so does the generation their records are delivered
        with (a newer one would have faust's streams skip those already queued).

        Otherwise faust takes the whole assignment (``on_partitions_assigned``): its tables
        recover the partitions gained, and meanwhile it pauses every partition; at the end it
        rewinds each to its committed offset (:meth:`seek_to_committed`) and empties the agents'
        queues — except the stream partitions kept flowing (see the module's docstring), with
        the same faust generation. If none is, the kept partitions are drained first, as for a
        revoke, if no revoke did it: everything they processed is committed, and the rewind
        reads again only what was cleared, unprocessed.
        """
        following = Holding.decode(raw)
        handover = Handover.between(self._holding(), following, self._changelogs())
        await self._revoke(following)  # the coordinator's on_revoke did this, unless superseded
        protocol = ConsumerProtocolMemberAssignment.decode(raw)
        gained = following.tps - self._assignment
        if not gained and not self._faust_rebalancing:
            # Still read: the user data also says where the other members' partitions are.
            self.app.assignor.on_assignment(protocol)  # type: ignore[attr-defined]  # see group/assign.py
            return
        if not self._faust_rebalancing:
            self._start_rebalance()
            self._kept_flow.keep(self._flowing_through(handover))
            if not self._kept_flow.kept:
                await self._drain()
        cooperative = bool(self._kept_flow.kept)
        if not cooperative:
            self.app.consumer_generation_id = generation
        changelogs = self._changelogs()
        self._written = {
            tp for tp in handover.kept if tp.topic in changelogs and tp in following.actives
        } if cooperative else set()
        self._withheld = set(self._written)
        self.app.assignor.on_assignment(protocol)  # type: ignore[attr-defined]  # see group/assign.py
        await self._take(set(gained), generation)
        self._faust_rebalancing = False
        await self.on_partitions_assigned(set(self._assignment), self.app.consumer_generation_id)

    def _flowing_through(self, handover: Handover) -> frozenset[TP]:
        """The kept stream partitions that flow on through this rebalance: positioned (not
        awaiting a seek of a rebalance still recovering), with the flow on and the membership
        held. None: the rebalance pauses, drains and rewinds everything, as faust's does."""
        if self._membership_lost or not (self.flow_active and self.app.flow_control.is_active()):
            return frozenset()
        changelogs = self._changelogs()
        return frozenset(tp for tp in handover.kept if tp.topic not in changelogs and tp not in self._awaiting_seek)

    def _start_rebalance(self) -> None:
        """faust's rebalance begins (once until the assignment that ends it)."""
        if not self._faust_rebalancing:
            self._faust_rebalancing = True
            self.app.on_rebalance_start()

    def _holding(self) -> Holding:
        return Holding(frozenset(self._assignment), frozenset(self._actives))

    def _changelogs(self) -> set[str]:
        return self.app.tables.changelog_topics

    async def _take(self, gained: set[TP], generation: int) -> None:
        """Claim offsets, fence changelogs and open readers for the partitions gained.

        Every stream partition held, kept ones too unless they flow through the rebalance,
        then waits for faust's rewind (``_awaiting_seek``): faust's assignment ends with it.
        """
        assert self._offsets is not None
        self._offsets.set_identity(self.member_id or "client", generation)
        changelogs = self._changelogs()
        actives = self.app.assignor.assigned_actives() if self._coordinator else gained
        sources = {tp for tp in gained if tp.topic not in changelogs}
        owned_changelogs = {tp for tp in gained if tp.topic in changelogs and tp in actives}
        self._retry.forget(gained)  # what the last owner declined is read back from the offset store
        committed = await self._offsets.claim(PartitionRef(tp.topic, tp.partition) for tp in sources)
        await asyncio.gather(*(self._fence(tp, generation) for tp in owned_changelogs))
        self._assignment |= gained
        self._actives |= owned_changelogs
        reset = self.app.conf.consumer_auto_offset_reset
        starts: dict[TP, int] = {}
        for tp in gained:
            offset = committed.get(PartitionRef(tp.topic, tp.partition))
            if offset is None:
                earliest, highwater = await self._session.registry.offsets(tp.topic, tp.partition)
                offset = highwater if reset == "latest" and tp in sources else earliest
            starts[tp] = offset
        self._start_offsets.update(starts)
        self._awaiting_seek = {tp for tp in self._assignment if tp.topic not in changelogs} - self._kept_flow.kept
        self._positioned = set()
        await asyncio.gather(*(self._readers.open(tp, offset) for tp, offset in starts.items()))

    async def _fence(self, tp: TP, generation: int) -> None:
        """Write the changelog partition's fence marker: older owners' writes now fail."""
        subject = self._session.naming.fence_subject(tp.topic, tp.partition)
        spec = self._session.registry.cached(tp.topic)
        # A windowed changelog's records age out; the fence must stay while this owner writes.
        headers = {"Nats-TTL": "never"} if spec is not None and spec.ages_out else None
        ack = await self._session.js.publish(
            subject, f'{{"owner":"{self.member_id}","generation":{generation}}}'.encode(), headers=headers
        )
        self._session.fences[(tp.topic, tp.partition)] = Fence(subject, int(ack.seq))

    def _lost(self) -> None:
        self.stop_flow()
        self.app.flow_control.suspend()
        self._membership_lost = True

    async def _on_reconnected(self) -> None:
        self._readers.reset_after_reconnect()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Rewind the assigned stream partitions to their committed offsets.

        faust calls this (``perform_seek``) after resuming partitions at the end of recovery,
        and when it finds the flow stopped, to re-read whatever was fetched in between. Newly
        assigned partitions hand out nothing until this first positioning (see
        ``_awaiting_seek``), so the rewind never delivers a message twice.

        Nor do they right after it: faust's recovery seeks first and only then resumes its flow
        control, and that resume empties every agent's queue (faust's channels are
        ``clear_on_resume``). A record delivered in between would be dropped there, after the
        reader had moved past it, and the windowed state would skip it for good. Positioned
        partitions are therefore released by the :meth:`resume_flow` that follows.
        """
        assert self._offsets is not None
        changelogs = self.app.tables.changelog_topics
        # Those kept flowing are where they should be: nothing of theirs was cleared.
        sources = [tp for tp in self._assignment if tp.topic not in changelogs and not self._kept_flow.spares(tp)]
        committed = await self._offsets.read(PartitionRef(tp.topic, tp.partition) for tp in sources)
        out: dict[TP, int] = {}
        for tp in sources:
            offset = committed.get(PartitionRef(tp.topic, tp.partition))
            # A state owner's changelog knows better than the committed offset: its state may
            # reflect more (flushed, then the commit failed) or less (a flush never completed).
            resume = self._resume_offset(tp)
            target = resume if resume is not None else (offset or self._start_offsets.get(tp))
            reader = self._readers.get(tp)
            if reader is not None and target is not None and reader.position != target:
                await reader.seek(target)
            self._positioned.add(tp)
            # faust counts acks from what this returns and needs them contiguous from it.
            reported = resume if resume is not None else offset
            if reported:
                out[tp] = reported
        self._readers.wake()
        return out

    async def _seek(self, partition: TP, offset: int) -> None:
        reader = self._readers.get(partition)
        if reader is not None:
            await reader.seek(offset)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        for tp, offset in partitions.items():
            if tp in self._withheld:
                continue  # a kept active changelog: the recovery reads none of it (see highwaters)
            await self._seek(tp, offset)
            if offset > 0:
                self._read_offset[tp] = offset
            else:
                self._read_offset.pop(tp, None)

    async def seek_to_beginning(self, *partitions: TP) -> None:
        for tp in partitions:
            earliest, _ = await self._session.registry.offsets(tp.topic, tp.partition)
            await self._seek(tp, earliest)

    async def position(self, tp: TP) -> int | None:
        reader = self._readers.get(tp)
        return reader.position if reader else None

    def assignment(self) -> set[TP]:
        return set(self._assignment)

    def highwater(self, tp: TP) -> int:
        reader = self._readers.get(tp)
        return reader.highwater if reader else 0

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """The partitions' highwaters — but for the active changelogs a member keeps through a
        rebalance, where the recovery already is: their writer goes on writing them (its own
        records, which its state is ahead of), and replaying them into a table that is being
        written meanwhile would set keys back to older values."""
        offsets = await asyncio.gather(
            *(self._session.registry.offsets(tp.topic, tp.partition) for tp in partitions)
        )
        out = {}
        for tp, (earliest, highwater) in zip(partitions, offsets, strict=True):
            if tp in self._written and self.app.rebalancing:
                # what faust's recovery will start from (Recovery._build_offsets): nothing to read
                known = cast(Any, self.app.tables).recovery.active_offsets.get(tp)
                highwater = max(-1 if known is None else known, earliest - 1) + 1
            out[tp] = highwater
        return out

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        offsets = await asyncio.gather(
            *(self._session.registry.offsets(tp.topic, tp.partition) for tp in partitions)
        )
        return {tp: earliest for tp, (earliest, _) in zip(partitions, offsets, strict=True)}

    # -- topics ---------------------------------------------------------------------------

    def topic_partitions(self, topic: str) -> int | None:
        spec = self._session.registry.cached(topic)
        return spec.partitions if spec else None

    def key_partition(self, topic: str, key: bytes | None, partition: int | None = None) -> int | None:
        spec = self._session.registry.cached(topic)
        if spec is None:
            return None
        if partition is not None:
            return partition
        if key is None:
            return None
        return partition_for_key(key, spec.partitions)

    create_topic = create_topic  # one body for the producer and the consumer

    def _new_topicpartition(self, topic: str, partition: int) -> TP:
        return TP(topic, partition)

    async def _partition_counts(self, topics: set[str]) -> dict[str, int]:
        specs = await self._session.registry.lookup_many(topics)
        return {topic: spec.partitions for topic, spec in specs.items()}

    def verify_event_path(self, now: float, tp: TP) -> None:
        """faust's livelock detector hook; our readers report their own stalls."""


class _Listener:
    """The coordinator's view of the consumer (keeps the group protocol out of faust's class)."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def subscription(self) -> tuple[str, ...]:
        return tuple(sorted(self._consumer._subscription))

    def metadata(self) -> bytes:
        assignor = self._consumer.app.assignor
        return cast(bytes, assignor.metadata(self._consumer._subscription).encode())  # type: ignore[attr-defined]

    async def on_revoke(self, following: bytes | None) -> None:
        await self._consumer._revoke(None if following is None else Holding.decode(following))

    async def on_assign(self, generation: int, assignment: bytes) -> None:
        await self._consumer._assign(generation, assignment)

    def on_lost(self) -> None:
        self._consumer._lost()
