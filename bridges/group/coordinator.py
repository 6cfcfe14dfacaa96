"""Consumer groups over JetStream KV: what Kafka's group coordinator gives faust.

The protocol (cooperative: a member gives up only the partitions that move):

1. **Membership.** Each worker holds a member key with a TTL (:mod:`bridges.group.lease`). A
   worker that stops cleanly deletes it; one that dies or is paused loses it when the TTL runs out.
2. **Leadership.** The leader key is taken by compare-and-set (create-if-absent) and kept with a
   TTL like a membership. When it disappears every member races to take it.
3. **Assignment.** Whenever the members or their subscriptions differ from what the current
   assignment was computed from, the leader waits ``rebalance_delay`` for things to settle, runs
   faust's assignor (sticky: it keeps partitions with their member where it can) and writes
   generation ``g + 1`` with compare-and-set.
4. **Revoke what moves, acknowledge, barrier, take what is new.** Every member reads the whole
   assignment of ``g`` from KV, so, unlike a Kafka member, it knows its next partitions before
   it revokes anything:

   a. it revokes only what it loses in ``g`` (partitions it is not given any more, and changelog
      partitions whose role changes between active and standby): faust drains in-flight work
      and commits, and the member releases their offsets, fences and readers. A member that
      loses nothing skips this, and its partitions flow on;
   b. it acknowledges ``g`` in its member record;
   c. it waits until every member of ``g`` has acknowledged it or is gone, so every partition
      that moves has been committed and released by its old owner;
   d. only then does it take what it gains (claiming their offsets and fencing their
      changelogs, so anything a vanished owner still tries to write is refused). The
      partitions it keeps keep their readers, offset claims and fences.

   So no partition is processed by two members in one generation, and a new owner starts from
   the old owner's final commit. A member whose partitions do not change at all does nothing;
   one that lost or gained some keeps processing the stream partitions it keeps while faust
   takes the new assignment (:mod:`bridges.transport.kept_flow` says how).
5. **Laggards.** A member that does not acknowledge within ``rebalance_timeout`` is evicted by
   the leader (its key deleted): it finds out when renewing, stops, and rejoins as a new member.
6. **Failures are retried.** A step that fails for a reason outside (NATS away, JetStream's
   store full, the rejoin's new member key refused) is tried again after a pause that doubles
   up to 5 s (:mod:`bridges.group.retries`), and logged once per run of failures: a worker
   never stops being a member for good, nor leaves and rejoins in a loop, because a write was
   refused.
7. **The local deadline.** Changelog writes and offset commits are fenced by the server (step
   4); final results, whose KV keys no fence covers, are fenced by :attr:`GroupCoordinator.lease`
   instead: valid until the last acknowledged renewal's send time + TTL - margin
   (:mod:`bridges.group.lease_clock`), so a member paused past its lease writes nothing from the
   moment the lease may have expired, before it has even noticed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from nats.aio.client import Client
from nats.js.kv import KeyValue

from bridges.connection import ConnectionSettings
from bridges.group.assign import AssignResult
from bridges.group.lease import LeaseKeeper
from bridges.group.lease_clock import LeaseClock
from bridges.group.records import Assignment, MemberRecord
from bridges.group.retries import Retries
from bridges.group.store import CasConflict, GroupKeys, GroupStore
from bridges.naming import Naming, decode_token
from tables.errors import BrokenError, ClosedError, StorageFull

__all__ = ["Assigner", "GroupCoordinator", "GroupSettings", "GroupView", "RebalanceListener"]

log = logging.getLogger(__name__)


class RebalanceListener(Protocol):
    """What the coordinator drives: the faust consumer."""

    def subscription(self) -> tuple[str, ...]: ...

    def metadata(self) -> bytes:
        """faust's assignor metadata for this member, encoded."""
        ...

    async def on_revoke(self, following: bytes | None) -> None:
        """Stop processing, commit and give up what is held and ``following`` (this member's
        next ``ConsumerProtocolMemberAssignment``) does not keep; everything when None."""
        ...

    async def on_assign(self, generation: int, assignment: bytes) -> None:
        """Hold the partitions of ``assignment`` (``ConsumerProtocolMemberAssignment``): take
        those not held yet; those kept flow on."""
        ...

    def on_lost(self) -> None:
        """The membership is gone: stop processing at once (commits would be refused)."""
        ...


class Assigner(Protocol):
    async def assign(self, members: dict[str, MemberRecord]) -> AssignResult: ...

    async def topics_exist(self, topics: frozenset[str]) -> bool:
        """Whether any of ``topics`` exists now."""
        ...


@dataclass(frozen=True)
class GroupSettings:
    #: a member that stops renewing its lease is gone after this long
    session_timeout: float = 6.0
    #: how long the leader waits for membership to settle before computing an assignment
    rebalance_delay: float = 0.2
    #: a member that has not acknowledged a generation after this long is evicted
    rebalance_timeout: float = 60.0
    replicas: int = 1


@dataclass
class GroupView:
    """The group as last seen through the KV watch."""

    members: dict[str, MemberRecord] = field(default_factory=dict)
    leader: str | None = None
    assignment: Assignment | None = None
    assignment_revision: int = 0
    assignment_seen_at: float = 0.0
    ready: bool = False  # the initial values have all been read


class _Changes:
    """A wake-up for everyone waiting on the view: ``wait(timeout)`` returns on the next change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancel that
        # stops the coordinator's tasks when it coincides with a change.
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            pass


class _Superseded(Exception):
    """A newer generation appeared while applying one."""


class GroupCoordinator:
    """Keeps one member in its group and drives its :class:`RebalanceListener`."""

    def __init__(
        self,
        client: Client,
        connection: ConnectionSettings,
        naming: Naming,
        group: str,
        listener: RebalanceListener,
        assigner: Assigner,
        settings: GroupSettings = GroupSettings(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._keys = GroupKeys(naming, group)
        self._store = GroupStore(client.jetstream(), self._keys, replicas=settings.replicas)
        self._listener = listener
        self._assigner = assigner
        self._settings = settings
        self._clock = clock
        self._group = group
        self._keeper = LeaseKeeper(
            connection,
            self._keys,
            ttl=settings.session_timeout,
            on_lost=self._on_lease_lost,
            replicas=settings.replicas,
        )
        self.view = GroupView()
        self._changes = _Changes()
        self._member_id: str | None = None
        self._applied = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._rejoin: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        #: subscribed topics the last assignment could not place (not created yet)
        self._missing_topics: frozenset[str] = frozenset()
        self._missing_checked_at = 0.0

    # -- public surface -------------------------------------------------------------------

    @property
    def member_id(self) -> str | None:
        return self._member_id

    @property
    def generation(self) -> int:
        """The generation whose assignment this member holds (0: none yet)."""
        return self._applied

    @property
    def is_leader(self) -> bool:
        return self._keeper.is_leader

    @property
    def lease(self) -> LeaseClock:
        """The membership's local deadline (step 7): what fenced writers check before writing."""
        return self._keeper.deadline

    async def start(self) -> None:
        if self._started:
            raise ClosedError("the coordinator was already started")
        self._started = True
        kv = await self._store.open()
        await self._keeper.start()
        self._tasks = [
            asyncio.create_task(self._watch(kv), name=f"group-watch-{self._group}"),
            asyncio.create_task(self._lead(), name=f"group-lead-{self._group}"),
            asyncio.create_task(self._follow(), name=f"group-follow-{self._group}"),
        ]

    async def update_subscription(self) -> None:
        """Join the group, or publish a changed subscription (the leader rebalances)."""
        if self._closed:
            raise ClosedError("the coordinator is stopped")
        if self._member_id is None:
            # At start only a full store is waited out: anything else (permissions, say) is a
            # mistake to report, not to wait for.
            await self._join_until_joined(retry_on=StorageFull)
        else:
            await self._publish_record()

    async def verify_membership(self) -> bool:
        """Check the lease now (after a refused commit, say); a lost one triggers the rejoin."""
        if self._closed or self._member_id is None:
            return False
        return await self._keeper.renew_now()

    async def stop(self) -> None:
        """Leave the group: delete the leases so others take over at once. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in [*self._tasks, *([self._rejoin] if self._rejoin else [])]:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110 - stopping; each task logs its own
                pass
        try:
            await self._keeper.leave()
        except Exception as exc:  # noqa: BLE001 - the leases expire on their own
            log.warning("leaving group %s cleanly failed (%s); leases will expire", self._group, exc)
        await self._keeper.stop()

    # -- membership -----------------------------------------------------------------------

    def _record(self) -> MemberRecord:
        assert self._member_id is not None
        return MemberRecord(
            member_id=self._member_id,
            subscription=tuple(sorted(self._listener.subscription())),
            metadata=self._listener.metadata(),
            acked=self._applied,
            applied=self._applied,
            host=socket.gethostname(),
            pid=os.getpid(),
        )

    async def _join(self) -> None:
        self._member_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._applied = 0
        await self._keeper.join(self._member_id, self._record().to_json())
        log.info("joined group %s as %s", self._group, self._member_id)
        self._changes.notify()

    async def _publish_record(self, *, acked: int | None = None) -> bool:
        record = self._record()
        if acked is not None:
            record = replace(record, acked=acked)
        return await self._keeper.update(record.to_json())

    def _on_lease_lost(self, kind: str) -> None:
        if kind == "leader" or self._closed:
            self._changes.notify()
            return
        log.warning("member %s lost its membership of %s; stopping and rejoining", self._member_id, self._group)
        self._listener.on_lost()
        if self._rejoin is None or self._rejoin.done():
            self._rejoin = asyncio.create_task(self._rejoin_group(), name="group-rejoin")

    async def _rejoin_group(self) -> None:
        await self._listener.on_revoke(None)
        await self._join_until_joined()

    async def _join_until_joined(self, *, retry_on: type[Exception] = Exception) -> None:
        """Join, trying again (step 6) while the member key is refused (``retry_on``): a worker
        started or rejoining while the store is full waits for room instead of failing."""
        self._member_id = None
        retries = Retries(f"joining group {self._group}")
        while not self._closed:
            try:
                await self._join()
            except retry_on as exc:  # e.g. the store full: the join waits for room
                self._member_id = None
                await retries.failed(exc)
            else:
                retries.succeeded()
                return

    # -- the view -------------------------------------------------------------------------

    async def _watch(self, kv: KeyValue) -> None:
        """Keep :attr:`view` current; a failed watch is restarted from a fresh read."""
        while True:
            try:
                await self._watch_once(kv)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - restart the watch; the view is rebuilt
                log.warning("watching group %s failed (%s); watching again", self._group, exc)
            self.view.ready = False
            self.view.members.clear()
            await asyncio.sleep(0.5)

    async def _watch_once(self, kv: KeyValue) -> None:
        watcher = await kv.watch(self._keys.all)
        prefix_members = f"{self._keys.root}.members."
        async for entry in watcher:
            view = self.view
            if entry is None:
                view.ready = True
                self._changes.notify()
                continue
            gone = entry.value is None or entry.operation in ("DEL", "PURGE") or not entry.value
            if entry.key.startswith(prefix_members):
                member_id = decode_token(entry.key[len(prefix_members):])
                if gone:
                    view.members.pop(member_id, None)
                else:
                    view.members[member_id] = MemberRecord.from_json(entry.value)
            elif entry.key == self._keys.leader:
                view.leader = None if gone else entry.value.decode()
            elif entry.key == self._keys.assignment and not gone:
                view.assignment = Assignment.from_json(entry.value)
                view.assignment_revision = int(entry.revision or 0)
                view.assignment_seen_at = self._clock()
            self._changes.notify()

    # -- leader duties --------------------------------------------------------------------

    async def _lead(self) -> None:
        retries = Retries(f"computing the assignment of group {self._group}")
        while True:
            await self._changes.wait(1.0)
            view = self.view
            if not view.ready or self._member_id is None or not self._keeper.has_membership:
                continue
            if not self._keeper.is_leader:
                if view.leader is None and await self._keeper.try_lead(self._member_id):
                    log.info("%s leads group %s", self._member_id, self._group)
                continue
            try:
                await self._lead_once()
            except CasConflict:
                continue  # another leader wrote meanwhile; the watch brings its assignment
            except BrokenError as exc:  # NATS away, the store full
                await retries.failed(exc)
            except Exception:
                log.exception("computing the assignment of group %s failed; retrying", self._group)
                await asyncio.sleep(1.0)
            else:
                retries.succeeded()

    async def _lead_once(self) -> None:
        view = self.view
        basis = {m: record.subscription for m, record in view.members.items()}
        current = view.assignment
        if current is None or current.basis != basis or await self._missing_topics_appeared():
            await self._settle()
            await self._write_assignment()
            return
        self._evict_laggards(current)

    async def _missing_topics_appeared(self) -> bool:
        """Once a second, whether a topic the last assignment lacked has been created."""
        if not self._missing_topics or self._clock() - self._missing_checked_at < 1.0:
            return False
        self._missing_checked_at = self._clock()
        return await self._assigner.topics_exist(self._missing_topics)

    async def _settle(self) -> None:
        """Wait until membership has not changed for ``rebalance_delay``."""
        delay = self._settings.rebalance_delay
        while True:
            before = {m: (r.subscription) for m, r in self.view.members.items()}
            await asyncio.sleep(delay)
            if before == {m: (r.subscription) for m, r in self.view.members.items()}:
                return

    async def _write_assignment(self) -> None:
        view = self.view
        members = dict(view.members)
        if not members:
            return
        result = await self._assigner.assign(members)
        previous = view.assignment.generation if view.assignment else 0
        assignment = Assignment(
            generation=previous + 1,
            leader=self._member_id or "",
            members=result.assignments,
            basis={m: record.subscription for m, record in members.items()},
        )
        await self._store.put(
            self._keys.assignment, assignment.to_json(), expect=view.assignment_revision
        )
        self._missing_topics = result.missing_topics
        if result.missing_topics:
            log.info("topics %s not created yet; will assign again", sorted(result.missing_topics))
        log.info(
            "group %s generation %d: %d members", self._group, assignment.generation, len(members)
        )

    def _evict_laggards(self, current: Assignment) -> None:
        if self._clock() - self.view.assignment_seen_at < self._settings.rebalance_timeout:
            return
        for member_id in current.members:
            record = self.view.members.get(member_id)
            if record is not None and record.acked < current.generation:
                log.warning(
                    "evicting %s from %s: generation %d not acknowledged in %.0fs",
                    member_id, self._group, current.generation, self._settings.rebalance_timeout,
                )
                task = asyncio.create_task(self._store.delete(self._keys.member(member_id)))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    # -- member duties --------------------------------------------------------------------

    async def _follow(self) -> None:
        retries = Retries(f"applying an assignment of group {self._group}")
        while True:
            await self._changes.wait(1.0)
            current = self.view.assignment
            me = self._member_id
            if (
                current is None
                or me is None
                or current.generation <= self._applied
                or me not in current.members
                or not self._keeper.has_membership
            ):
                continue
            try:
                await self._apply(current, me)
            except _Superseded:
                continue
            except Exception as exc:  # noqa: BLE001 - a write refused (the store full, NATS away): applied again
                await retries.failed(exc)
            else:
                retries.succeeded()

    async def _apply(self, assignment: Assignment, me: str) -> None:
        generation = assignment.generation
        log.info("%s: rebalancing to generation %d", me, generation)
        await self._listener.on_revoke(assignment.members[me])  # step 4a: only what moves
        if not await self._publish_record(acked=generation):
            return  # lost the lease meanwhile; the rejoin takes over
        while True:
            self._check_current(generation)
            waiting = [
                m
                for m in assignment.members
                if m != me and (r := self.view.members.get(m)) is not None and r.acked < generation
            ]
            if not waiting:
                break
            await self._changes.wait(1.0)
        self._check_current(generation)
        await self._listener.on_assign(generation, assignment.members[me])
        self._applied = generation
        # The assignor metadata now carries the new assignment: publish it for stickiness.
        await self._publish_record()

    def _check_current(self, generation: int) -> None:
        latest = self.view.assignment
        if latest is not None and latest.generation > generation:
            raise _Superseded
