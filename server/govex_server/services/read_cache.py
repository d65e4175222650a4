"""A cache of stored facts that change only when the store says so.

Reads far outnumber governance changes, so facts read often (the governance
state, the policy in force) are kept in memory and dropped on every change
the store reports: our own commits, and other replicas' through
LISTEN/NOTIFY. A generation counter keeps a read that overlapped a change
from caching what it saw. Without a way to hear about other replicas'
changes (PostgreSQL while the LISTEN connection is down) it is turned off.

A notification arrives a little after the commit, so on PostgreSQL a cached
value is also checked against the store's change stamp (the newest event
sequence, one indexed read) before it is served: a read that follows another
replica's response sees that replica's change, even before its
notification."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from govex_server.store.database import Store

T = TypeVar("T")


class ReadCache(Generic[T]):
    """One cached value."""

    def __init__(self, store: Store, kinds: frozenset[str] | None = None) -> None:
        """Dropped on every change, or only on changes that recorded events of
        ``kinds`` when given."""
        self._enabled = store.is_sqlite  # SQLite: this process is the only writer
        self._generation = 0
        self._value: T | None = None
        self._value_stamp: int | None = None
        # SQLite: every change is this process's own, heard at its commit.
        self._stamp = None if store.is_sqlite else store.change_stamp
        store.on_change(self.invalidate, kinds)

    def enable(self, enabled: bool) -> None:
        """Turns the cache on (we hear about every change) or off."""
        self._enabled = enabled
        self.invalidate()

    def invalidate(self) -> None:
        """Drops the value: the store changed."""
        self._generation += 1
        self._value = None

    @property
    def generation(self) -> int:
        """Moves on every change the store reports."""
        return self._generation

    def version(self) -> int | None:
        """Names the value held now: the same number while it is held,
        another once a change drops it; None when no value is held, or when
        a held value must first be checked against the store's change stamp
        (PostgreSQL: other replicas write too)."""
        if self._value is None or not self._enabled or self._stamp is not None:
            return None
        return self._generation

    async def get(self, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or a fresh load (cached if nothing changed meanwhile)."""
        if not self._enabled:
            return await load()
        stamp = await self._stamp() if self._stamp is not None else None
        if self._value is not None and stamp == self._value_stamp:
            return self._value
        generation = self._generation
        value = await load()
        # A change between the stamp and the load leaves a newer value under
        # an older stamp: the next read loads again, never the other way.
        if self._enabled and generation == self._generation:
            self._value, self._value_stamp = value, stamp
        return value
