"""Units that many tasks write at once, run as one unit of work.

The writer already commits every queued unit in one transaction, but each
unit still costs its own SAVEPOINT and RELEASE, its lease check, its unit of
work and its ledger entry; on SQLite every statement hands the GIL to the
event loop and waits to get it back. A PARALLEL round decides and records a
thousand orders, two units each: those per-unit statements were half of
what the writer ran.

So the tasks of a round hand their units to one ``SharedUnits``. While one
shared unit is at the writer, the units handed in queue; the next shared
unit runs them all, in the order they came, in one unit of work (each sees
what the ones before it wrote). If the shared unit raises, none of it is
kept, and each of its units is run again alone: only the unit that fails
fails, as if each had been written on its own. A unit must therefore be a
function of what it reads (no effect outside the unit of work), as every
unit given to ``Store.write`` already is."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from govex_server.store.database import Store, Unit, UnitOfWork

T = TypeVar("T")


class SharedUnits:
    """One queue of units and at most one shared unit at the writer."""

    def __init__(self, store: Store, most: int | None = None) -> None:
        """At most ``most`` units a shared unit (no bound when None)."""
        if most is not None and most < 1:
            raise ValueError(f"a shared unit takes at least one unit, not {most}")
        self._store = store
        self._most = most
        self._queued: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None
        # Shared units written, and units run again alone after a shared
        # unit failed (the tests read these).
        self.shared = 0
        self.alone = 0

    async def write(self, unit: Unit[T]) -> T:
        """``unit``'s result once the shared unit that ran it committed. A
        cancelled caller does not withdraw its unit: once handed in it is
        written (as with ``Store.write``)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((unit, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Unit[Any], asyncio.Future[Any]]] = []
        try:
            while self._queued:
                if self._most is None or len(self._queued) <= self._most:
                    batch, self._queued = self._queued, []
                else:
                    batch = self._queued[: self._most]
                    self._queued = self._queued[self._most :]
                await self._write(batch)
        except BaseException as exc:
            # Cancelled with the loop: nobody is left waiting forever.
            for _, future in [*batch, *self._queued]:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            self._queued = []
            raise
        finally:
            self._drainer = None

    async def _write(self, batch: list[tuple[Unit[Any], asyncio.Future[Any]]]) -> None:
        units = [unit for unit, _ in batch]

        def shared(uow: UnitOfWork) -> list[Any]:
            return [unit(uow) for unit in units]

        self.shared += 1
        try:
            results = await self._store.write(shared)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            # Nothing of it was kept. Which unit failed, and why, is found
            # by running each alone, one after the other in the order they
            # came: the others are written as they would have been on their
            # own, each seeing the ones before it.
            self.alone += len(batch)
            for unit, future in batch:
                await self._alone(unit, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)

    async def _alone(self, unit: Unit[Any], future: asyncio.Future[Any]) -> None:
        try:
            result = await self._store.write(unit)
        except Exception as exc:
            _settle(future, error=exc)
        else:
            _settle(future, result)


def _settle(
    future: asyncio.Future[Any], result: Any = None, error: Exception | None = None
) -> None:
    if future.done():  # its caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
