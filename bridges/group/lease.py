"""Leases kept alive from a thread of their own.

A member's lease is its key in the group bucket, written with a TTL and renewed every third of
it. The renewals run on a private event loop in a daemon thread, over a private NATS connection,
so a worker whose main loop is busy in user code (a slow agent, a long recovery) keeps its
membership — the same reason Kafka clients heartbeat from a background thread.

Every write is a compare-and-set against the revision the keeper wrote last. When one fails,
someone else changed the key (the leader evicted us) or the TTL ran out while we were paused
(SIGSTOP, a network partition): the lease is lost, the keeper stops renewing it and tells the
main loop, which must stop processing and rejoin under a new member id.

A renewal that fails for another reason (NATS away, the store full) is tried again next round;
meanwhile the local deadline passes and fenced writers stop. The first failure of a run is
logged as a warning, the rest of the run only at debug, and its end once. (While JetStream's
store is full the key's TTL does not run out either: its delete marker waits for room too. Once
there is room the key may expire before the next renewal lands: the lease is then lost, once.)

Every acknowledged write of the member key also moves the local lease deadline
(:mod:`bridges.group.lease_clock`): the clock is read *before* the write is sent, and the lease is
taken to be valid until that moment + TTL - margin. Losing or leaving the membership ends the
deadline's term at once. Writers that must be fenced (final results) check that deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from nats.aio.client import Client

from bridges.connection import ConnectionSettings, connect
from bridges.group.lease_clock import LeaseDeadline
from bridges.group.store import CasConflict, GroupKeys, GroupStore
from bridges.storage import storage_full_from
from tables.errors import BrokenError, ClosedError

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Lease:
    __slots__ = ("key", "value", "revision")

    def __init__(self, key: str, value: bytes, revision: int) -> None:
        self.key = key
        self.value = value
        self.revision = revision


class LeaseKeeper:
    """Holds the member lease (and the leader lease while leading) for one group member.

    Args:
        settings: how to connect (the keeper opens its own connection).
        keys: the group's key layout.
        ttl: lease length in seconds (the session timeout).
        on_lost: called on the *caller's* event loop with ``"member"`` or ``"leader"`` when a
            lease is lost.
        deadline: moved by every acknowledged write of the member key; a new one when None.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        keys: GroupKeys,
        *,
        ttl: float,
        on_lost: Callable[[str], None],
        replicas: int = 1,
        deadline: LeaseDeadline | None = None,
    ) -> None:
        self._settings = settings
        self.deadline = deadline if deadline is not None else LeaseDeadline(ttl)
        self._keys = keys
        self._ttl = ttl
        self._on_lost = on_lost
        self._replicas = replicas
        self._caller_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._client: Client | None = None
        self._store: GroupStore | None = None
        self._member: _Lease | None = None
        self._leader: _Lease | None = None
        self._stopping: asyncio.Event | None = None
        # Renewals and record updates of one key must not race each other's compare-and-set.
        self._write_lock: asyncio.Lock | None = None
        self._closed = False
        #: renewals that failed in a row, per lease kind (logged once per run, see the docstring)
        self._failures: dict[str, int] = {}

    # -- lifecycle (called from the caller's loop) -----------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            raise ClosedError("the lease keeper was already started")
        self._caller_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run_thread, name="group-leases", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def stop(self) -> None:
        """Stop renewing and close the keeper's connection (leases then expire). Idempotent."""
        if self._closed or self._loop is None:
            self._closed = True
            return
        self._closed = True
        self.deadline.end()  # nothing renews the lease any more: it may not be relied on
        loop = self._loop
        if self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)

    # -- leases (called from the caller's loop) --------------------------------------------

    async def join(self, member_id: str, record: bytes) -> None:
        """Create the member key (its lease); raises CasConflict if that id is taken."""
        await self._call(self._join(member_id, record))

    async def update(self, record: bytes) -> bool:
        """Rewrite the member record; False if the lease was lost meanwhile."""
        return await self._call(self._update(record))

    async def try_lead(self, member_id: str) -> bool:
        """Take the leader lease if nobody holds it."""
        return await self._call(self._try_lead(member_id))

    async def renew_now(self) -> bool:
        """Renew the leases at once; False if the membership turned out to be lost."""
        await self._call(self._renew_all())
        return self._member is not None

    async def leave(self) -> None:
        """Give up both leases now (a clean shutdown), so others need not wait for the TTL."""
        await self._call(self._leave())

    @property
    def is_leader(self) -> bool:
        return self._leader is not None

    @property
    def has_membership(self) -> bool:
        return self._member is not None

    # -- the thread ----------------------------------------------------------------------------

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            else:
                log.exception("the lease thread failed")
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._client = await connect(self._settings, name=f"{self._settings.name}-leases")
        self._store = GroupStore(self._client.jetstream(), self._keys, replicas=self._replicas)
        await self._store.open()
        self._ready.set_result(None)
        interval = self._ttl / 3
        try:
            while not self._stopping.is_set():
                try:
                    async with asyncio.timeout(interval):
                        await self._stopping.wait()
                except TimeoutError:
                    pass
                if not self._stopping.is_set():
                    await self._renew_all()
        finally:
            await self._client.close()

    async def _renew_all(self) -> None:
        async with self._lock():
            await self._renew_unlocked()

    async def _renew_unlocked(self) -> None:
        for kind in ("member", "leader"):
            lease = self._member if kind == "member" else self._leader
            if lease is None:
                continue
            # Read before the request goes out: the server stores it later, so its TTL runs
            # at least until then + ttl (a pause between here and the send only shortens ours).
            sent_at = self.deadline.now()
            try:
                lease.revision = await self._require_store().put(
                    lease.key, lease.value, expect=lease.revision, ttl=self._ttl
                )
            except CasConflict:
                self._failures.pop(kind, None)
                self._lose(kind)
            except Exception as exc:  # noqa: BLE001 - NATS unreachable, the store full: retry next round
                self._renewal_failed(kind, lease.key, exc)
            else:
                failures = self._failures.pop(kind, 0)
                if failures:
                    log.warning("renewing the %s lease works again after %d failed renewals", kind, failures)
                if kind == "member":
                    self.deadline.renewed(sent_at)

    def _renewal_failed(self, kind: str, key: str, exc: Exception) -> None:
        failures = self._failures[kind] = self._failures.get(kind, 0) + 1
        reason = storage_full_from(exc, f"$KV.{self._keys.bucket}.{key}") or exc
        if failures == 1:
            log.warning(
                "renewing the %s lease failed: %s; trying again every %.1fs (until then the lease may lapse)",
                kind, reason, self._ttl / 3,
            )
        else:
            log.debug("renewing the %s lease failed again (%d in a row): %s", kind, failures, reason)

    def _lose(self, kind: str) -> None:
        if kind == "member":
            self.deadline.end()  # first: fenced writers stop before anyone is told
            self._member = None
            self._leader = None  # a leader without membership is no leader
        else:
            self._leader = None
        log.warning("the %s lease was lost (expired or taken over)", kind)
        assert self._caller_loop is not None
        self._caller_loop.call_soon_threadsafe(self._on_lost, kind)

    async def _join(self, member_id: str, record: bytes) -> None:
        async with self._lock():
            key = self._keys.member(member_id)
            sent_at = self.deadline.now()
            revision = await self._require_store().create(key, record, ttl=self._ttl)
            self._member = _Lease(key, record, revision)
            self.deadline.begin(sent_at)

    async def _update(self, record: bytes) -> bool:
        async with self._lock():
            return await self._update_unlocked(record)

    async def _update_unlocked(self, record: bytes) -> bool:
        lease = self._member
        if lease is None:
            return False
        sent_at = self.deadline.now()
        try:
            lease.revision = await self._require_store().put(
                lease.key, record, expect=lease.revision, ttl=self._ttl
            )
        except CasConflict:
            self._lose("member")
            return False
        lease.value = record
        self.deadline.renewed(sent_at)  # the record rewrite renewed the TTL too
        return True

    async def _try_lead(self, member_id: str) -> bool:
        async with self._lock():
            return await self._try_lead_unlocked(member_id)

    async def _try_lead_unlocked(self, member_id: str) -> bool:
        if self._member is None:
            return False
        if self._leader is not None:
            return True
        try:
            revision = await self._require_store().create(
                self._keys.leader, member_id.encode(), ttl=self._ttl
            )
        except CasConflict:
            return False
        self._leader = _Lease(self._keys.leader, member_id.encode(), revision)
        return True

    async def _leave(self) -> None:
        async with self._lock():
            store = self._require_store()
            leader, member = self._leader, self._member
            self._leader = self._member = None
            self.deadline.end()
            if leader is not None:
                await store.delete(leader.key, expect=leader.revision)
            if member is not None:
                await store.delete(member.key, expect=member.revision)

    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            raise BrokenError("the lease thread is not running")
        return self._write_lock

    def _require_store(self) -> GroupStore:
        if self._store is None:
            raise BrokenError("the lease thread is not connected")
        return self._store

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed or self._loop is None:
            coro.close()
            raise ClosedError("the lease keeper is stopped")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
