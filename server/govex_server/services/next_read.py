"""Reads shared by callers that ask for the same thing at once.

A burst of streams opening together (a restart, a reconnect storm) would
each read the same rows. Here, callers that ask for a key while a read of it
is under way share the *next* read, one that starts after they asked. A read
that began before a caller came never serves it: that read's snapshot could
miss an event committed in between, and the caller would have a gap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class NextRead(Generic[K, V]):
    """Coalesces concurrent reads of one key into one read at a time."""

    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self._read = read
        self._waiting: dict[K, asyncio.Future[V]] = {}
        self._drivers: dict[K, asyncio.Task[None]] = {}
        self.reads = 0

    async def get(self, key: K) -> V:
        """The value of ``key`` from a read that started after this call."""
        wanted = self._waiting.get(key)
        if wanted is None:
            wanted = self._waiting[key] = asyncio.get_running_loop().create_future()
            if key not in self._drivers:
                self._drivers[key] = asyncio.create_task(self._drive(key))
        return await asyncio.shield(wanted)

    def cancel(self) -> None:
        """Stops every read under way; their callers are cancelled."""
        for driver in list(self._drivers.values()):
            driver.cancel()

    async def _drive(self, key: K) -> None:
        try:
            while key in self._waiting:
                wanted = self._waiting.pop(key)
                self.reads += 1
                try:
                    value = await self._read(key)
                except asyncio.CancelledError:
                    wanted.cancel()
                    raise
                except Exception as exc:
                    wanted.set_exception(exc)
                else:
                    wanted.set_result(value)
        finally:
            del self._drivers[key]
            left = self._waiting.pop(key, None)
            if left is not None:  # stopped with callers still waiting
                left.cancel()
