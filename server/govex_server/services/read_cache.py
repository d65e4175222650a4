"""A cache of stored facts that change only when the store says so.

Reads far outnumber governance changes, so facts read often (the governance
state, the policy in force) are kept in memory and dropped on every change
the store reports: our own commits, and other replicas' through
LISTEN/NOTIFY. A generation counter keeps a read that overlapped a change
from caching what it saw. Without a way to hear about other replicas'
changes (PostgreSQL while the LISTEN connection is down) it is turned off."""

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
        store.on_change(self.invalidate, kinds)

    def enable(self, enabled: bool) -> None:
        """Turns the cache on (we hear about every change) or off."""
        self._enabled = enabled
        self.invalidate()

    def invalidate(self) -> None:
        """Drops the value: the store changed."""
        self._generation += 1
        self._value = None

    async def get(self, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or a fresh load (cached if nothing changed meanwhile)."""
        if self._enabled and self._value is not None:
            return self._value
        generation = self._generation
        value = await load()
        if self._enabled and generation == self._generation:
            self._value = value
        return value
