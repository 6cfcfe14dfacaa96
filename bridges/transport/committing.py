"""The consumer's commit path: state first, then offsets, and nothing forgotten on revoke.

faust commits at every commit interval, on revoke and on stop through ``_commit_offsets``. Here
that is preceded by a flush of the state owners (windowed tables, :mod:`bridges.transport.state_owners`)
so no offset gets ahead of the state it belongs to; offsets go to the KV offset store by
compare-and-set (``_commit``), declined ones are offered again (:mod:`bridges.transport.commit_retry`),
and a revoke commits the work in hand before faust forgets it (``_drain``).

:class:`CommittingConsumer` is that path and nothing else; which partitions are assigned, and the
coordinator and offset store behind them, are its subclass's,
:class:`~bridges.transport.consumer.Consumer`, through the attributes it declares.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from faust.types import TP
from faust.types.transports import TPorTopicSet

from bridges.group import GroupCoordinator
from bridges.transport.commit_retry import CommitRetry
from bridges.transport.fetching import FetchingConsumer
from bridges.transport.kept_flow import KeptFlow
from bridges.transport.offsets import OffsetStore, PartitionRef
from bridges.transport.session import TransportSession
from bridges.transport.state_owners import StateOwners
from tables.changelog import StateOwner
from tables.errors import StorageFull, StreamsError

__all__ = ["CommittingConsumer"]

log = logging.getLogger(__name__)


class CommittingConsumer(FetchingConsumer):
    """faust's Consumer with this transport's commit path; the subclass sets the attributes below."""

    _session: TransportSession
    #: the partitions assigned (and those being revoked, until their revoke has committed)
    _assignment: set[TP]
    #: the partitions kept flowing through the rebalance under way
    _kept_flow: KeptFlow
    #: state (windowed tables) flushed before each commit and asked where to resume
    _state: StateOwners
    #: offsets of declined commits, and the pauses while the store is full
    _retry: CommitRetry[TP]
    #: the refusal of the offset commit under way, when for lack of room
    _refused_for_room: StorageFull | None
    #: whether the commit under way got as far as committing offsets (see _commit_tps)
    _commit_attempted: bool
    #: the commits under way, each a task of its own (see commit)
    _commits: set[asyncio.Future[bool]]
    _offsets: OffsetStore | None
    _coordinator: GroupCoordinator | None

    async def _drain(self) -> None:
        """Finish and commit the work in hand before faust's revoke forgets it.

        faust's ``Consumer.on_partitions_revoked`` drops the acknowledged offsets of the revoked
        partitions first and only then has the app drain its agents, so the drain's commits
        commit nothing of them: everything processed since the last commit would be processed
        again by the next owner. The app's own drain is run here first, in its order, while
        those offsets are still known:

        1. Stop handing out records and suspend the agents' flow.
        2. Clear the agents' buffers: records not started are not acknowledged, and the next
           owner reads them from the commit.
        3. Wait until every record started is acknowledged, committing as faust's
           ``wait_empty`` does (state flushed first: :meth:`_commit_offsets`).

        faust's revoke then finds nothing left to wait for. A worker whose membership is lost
        skips this: its commits would be refused.
        """
        self._kept_flow.keep(frozenset())
        self.stop_flow()
        self.app.flow_control.suspend()
        self.app.flow_control.clear()
        if self.app.conf.stream_wait_empty:
            await self.wait_empty()  # which ends with commit_and_end_transactions
        else:
            await self.commit_and_end_transactions()

    async def _drain_lost(self, lost: frozenset[TP], spared: frozenset[TP]) -> None:
        """:meth:`_drain` for the partitions a member loses while others flow on (``spared``,
        whose queued events the clear keeps: :mod:`bridges.transport.kept_flow`).

        1. Hand out nothing more of ``lost`` (withheld), and wait for a record of theirs being
           handed out to arrive in its agent's queue.
        2. Clear the queued events of every partition but ``spared``: nothing has taken them,
           so nothing acknowledged them, and the next owner reads them from the commit.
        3. Wait until every record of ``lost`` already taken by an agent is acknowledged — the
           others are not waited for: they keep coming — then commit, state flushed first.

        The flow stays on throughout, so the agents go on with the partitions kept.
        """
        self._withheld |= lost
        await self._delivery_ended(lost)
        self._kept_flow.keep(spared)
        self.app.flow_control.clear()
        while self.app.conf.stream_wait_empty and not self.should_stop and self._taken_from(lost):
            await self._until_acked(timeout=1.0)
        await self.commit_and_end_transactions()

    async def _forget(self, lost: frozenset[TP]) -> None:
        """faust's revoke of ``lost`` (``Consumer.on_partitions_revoked`` and its app's part)
        without what stops every partition: their acks, read and committed offsets forgotten,
        the tables' recovery buffers flushed, and the app's ``on_partitions_revoked`` signal."""
        if self._active_partitions is not None:
            self._active_partitions.difference_update(lost)
        self._paused_partitions.difference_update(lost)
        for tp in lost:
            self._gap.pop(tp, None)
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._read_offset.pop(tp, None)
            self._committed_offset.pop(tp, None)
        self.app.tables.on_partitions_revoked(set(lost))
        await self.app.on_partitions_revoked.send(set(lost))

    def _taken_from(self, tps: frozenset[TP]) -> bool:
        """Whether an agent has taken a record of ``tps`` that it has not acknowledged yet."""
        return any(not message.acked and message.tp in tps for message in list(self._unacked_messages))

    async def _until_acked(self, timeout: float) -> None:
        """Until the next acknowledgement (faust's ``ack`` resolves ``_waiting_for_ack``) or
        ``timeout`` seconds; faust's own ``_wait_for_ack`` would swallow a cancellation."""
        waiter = self._waiting_for_ack = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiting_for_ack = None

    async def commit_and_end_transactions(self) -> None:
        """faust's last commit: at the end of ``wait_empty`` (a drain, a revoke) and on stop.

        faust's ``commit`` does nothing while another commit is under way (the commit timer's,
        slow when the producer's buffer is full): it waits for that one to finish and returns.
        But that one took its offsets before the latest acks, so the work done since would
        not be committed, and the next owner would process it again. The commit under way is
        waited out first, and then the last commit is made.
        """
        while await self.maybe_wait_for_commit_to_finish():
            pass
        await super().commit_and_end_transactions()

    async def commit(self, topics: TPorTopicSet | None = None, start_new_transaction: bool = True) -> bool:
        """faust's commit, run to its end however its caller ends.

        A commit takes its offsets off faust's ack lists before it stores them, and whoever
        calls ``commit`` meanwhile waits for it on one future, shared. The fetch loop's delivery
        commits (every ``broker_commit_every`` acks) and is cancelled whenever the flow stops:
        a revoke's drain, a worker stopping. Cut short there, a commit would lose its offsets
        (faust's next commits stop at the gap they leave, so nothing of the partition would be
        committed again), and a cancelled waiter would cancel the shared future, telling every
        other waiter the commit is over while it goes on: a drain's last commit then starts
        beside it, finds those acks taken and commits none of them, and what was processed
        since the last commit is processed again by the partition's next owner. Run as a task
        of its own, shielded, a caller's cancellation reaches neither.
        """
        under_way = asyncio.ensure_future(super().commit(topics, start_new_transaction))
        self._commits.add(under_way)
        under_way.add_done_callback(self._commits.discard)
        try:
            return await asyncio.shield(under_way)
        except asyncio.CancelledError:
            under_way.add_done_callback(_log_failure)  # its caller is gone: nobody else sees it
            raise

    async def maybe_wait_for_commit_to_finish(self) -> bool:
        """Wait for the commit under way, if there is one (faust's, but shielded: see :meth:`commit`).

        faust's own takes a cancellation of the shared future for the end of the commit and
        swallows it, cancelling the waiter or not; here the waiter's cancellation is its own.
        """
        shared = self._commit_fut
        if shared is None:
            return False
        await asyncio.shield(shared)
        return True

    def register_state_owner(self, owner: StateOwner) -> None:
        """Flush ``owner`` before every commit; let it say where its partitions resume."""
        self._state.register(owner)

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Commit order: state flushed (its changelogs stored; :mod:`bridges.transport.state_owners`),
        then faust flushes the producer and commits the offsets. A failed flush fails the commit,
        so no offset gets ahead of the state it belongs to.

        A flush refused by a fence — a changelog fence, or the lease deadline that fences final
        results (a write of a membership that is over) — means a newer owner took a partition
        over (this worker was paused or cut off past its lease): the commit is skipped, as a
        fenced offset commit is, and the lease is checked so the worker rejoins — instead of the
        error escaping into faust's commit timer, which crashes the worker.

        A flush that failed otherwise because a result, dead letter or changelog record could
        not be stored yet (the lease not renewed in time, NATS away; a :class:`BrokenError`)
        skips the commit too: the owner keeps what it could not store and tries it again at the
        next commit, and has recorded nothing past it, so no offset may be committed either.

        Storage full (:class:`StorageFull`, from the flush or the offset commit) is such a
        failure that lasts until an operator makes room: the worker enters the session's
        storage-full state (logged once) and spaces its commits out, until one goes through and
        ends it. Processing goes on meanwhile; the lease, which cannot be renewed either, stops
        the closing of windows.

        Every declined commit's offsets are offered again at the next commit, new acks or not
        (:mod:`bridges.transport.commit_retry`).

        Nor does a worker whose lease may have expired commit anything (checked before the flush
        starts): its partitions may be another's by now, and its state is not to be trusted (the
        watermark counts the pause as stream time; see step 1 of ``WindowedRuntime.flush``).
        """
        self._commit_attempted = True
        retry = self._retry
        if retry.waiting():
            retry.declined(offsets, self._committed_offset, self._assignment)
            return False  # pausing while the store is full: that was logged when it began
        if not self._session.lease.valid():
            # While the store is full the lease cannot be renewed either: that was logged.
            (log.debug if retry.storage.full else log.warning)(
                "not committing: this worker's lease may have expired, its partitions may be another's"
            )
            if self._coordinator is not None:
                await self._coordinator.verify_membership()
            return self._declined(offsets, None)
        failure = await self._state.flush()
        if failure is not None and failure.fenced:
            log.warning("not committing: a state flush was refused, this worker was fenced off (%s)", failure.error)
            if self._coordinator is not None:
                await self._coordinator.verify_membership()
            return self._declined(offsets, None)
        if failure is not None:
            if failure.full is None:
                log.warning("not committing: the state flush could not store everything yet (%s)", failure.error)
            return self._declined(offsets, failure.full, "state")
        self._refused_for_room = None
        committed = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        if committed:
            retry.committed(offsets)
        elif self._refused_for_room is None:
            retry.declined(offsets, self._committed_offset, self._assignment)
        if self._refused_for_room is not None:
            return self._declined(offsets, self._refused_for_room, "offsets")
        if committed and retry.storage.full:
            retry.stored()
        return committed

    async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
        """faust's commit, at every commit interval. With no offset to commit, the state is
        flushed all the same: on an idle stream the watermark still closes windows, and their
        deletions must reach the changelog (and leave it: tables.compaction) without waiting for
        the next event. Such a flush records the source offset already committed."""
        self._commit_attempted = False
        committed = await super()._commit_tps(tps, start_new_transaction)
        if not self._commit_attempted and self._state:
            await self._flush_idle()
        return committed

    async def _flush_idle(self) -> None:
        """The flush of :meth:`_commit_tps`, under a commit's conditions; a failure is left to the
        next commit with offsets, which logs it and acts (see :meth:`_commit_offsets`)."""
        if self._retry.waiting() or not self._session.lease.valid():
            return
        failure = await self._state.flush()
        if failure is not None:
            log.debug("idle state flush did not complete (%s)", failure.error)

    def _declined(self, offsets: Mapping[TP, int], full: StorageFull | None, what: str = "") -> bool:
        """Keep ``offsets`` for a later commit (see :mod:`bridges.transport.commit_retry`)."""
        self._retry.declined(offsets, self._committed_offset, self._assignment)
        self._retry.refused(full, what)
        return False

    def _filter_committable_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """faust's committable offsets, plus those a commit declined before: faust has dropped
        their acks and would not offer them again."""
        tps = list(tps)
        offsets = dict(super()._filter_committable_offsets(tps))
        self._retry.offer(offsets, set(tps), self._assignment)
        return offsets

    def _resume_offset(self, tp: TP) -> int | None:
        return self._state.resume_offset(tp)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        if self._offsets is None:
            return False
        mine = {
            PartitionRef(tp.topic, tp.partition): offset
            for tp, offset in offsets.items()
            if tp in self._assignment
        }
        if not mine:
            return False
        try:
            fenced = await self._offsets.commit(mine)
        except StorageFull as exc:
            self._refused_for_room = exc
            return False
        except StreamsError as exc:
            log.warning("committing offsets failed: %s", exc)
            return False
        if fenced:
            log.warning("commits refused for %s: this worker was fenced off", sorted(fenced))
            if self._coordinator is not None:
                await self._coordinator.verify_membership()
            return False
        return True


def _log_failure(commit: asyncio.Future[bool]) -> None:
    """Log how a commit whose caller was cancelled failed, if it did."""
    if not commit.cancelled() and commit.exception() is not None:
        log.error("a commit failed after its caller was cancelled", exc_info=commit.exception())
