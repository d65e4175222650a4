"""Group commit on SQLite: one writer thread, one transaction per batch.

SQLite allows one writer at a time and every commit costs an fsync
(``synchronous=FULL``: a committed plan transition survives a power cut). So
one thread owns the only write connection; callers hand it a unit of work (a
plain function of a UnitOfWork) and await the result. The thread takes every
unit queued while the previous batch was committing, runs each in its own
SAVEPOINT (a unit that raises is rolled back alone and its caller gets the
error), then writes the audit records and events its units recorded
together (batch_ledger.py: a few statements per batch instead of four per
unit) and commits once: one fsync for the whole batch. A caller's future
is resolved only after its batch committed, and the events the batch
appended are handed over (in sequence order) before any caller hears back,
so a response never overtakes its own event.

The thread runs the units synchronously, with no await between statements:
that is what makes a unit cheap (no event-loop round trip per statement) and
a batch short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from govex_server.store.prepared import compile_all
from govex_server.store.repositories import StoredEvent

log = logging.getLogger("govex.store")

# A batch is bounded so that one burst cannot hold the write transaction (and
# the callers at its head) for long.
MAX_BATCH = 256


class Ledger(Protocol):
    """What a batch's units recorded (store/batch_ledger.py)."""

    def finish(self) -> list[StoredEvent]:
        """Writes it as the batch's last statements; the stored events."""


Committed = Callable[[list[StoredEvent]], None]
# Called at the start of every batch, inside its transaction.
BeginBatch = Callable[[Connection], Ledger]
# A unit as the writer runs it: on the connection, recording into the ledger.
Run = Callable[[Connection, Any], Any]
# Told the seconds and the units of every batch (from the writer thread).
Observed = Callable[[float, int], None]


@dataclass(eq=False)
class _Job:
    run: Run
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


_STOP = object()


class GroupCommitWriter:
    """The writer thread and its queue."""

    def __init__(self, engine: Engine, begin_batch: BeginBatch, committed: Committed) -> None:
        self.observe: Observed | None = None
        self._engine = engine
        self._begin_batch = begin_batch
        self._committed = committed
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="govex-sqlite-writer", daemon=True)
        self._started = False
        self.batches = 0
        self.units = 0

    @property
    def engine(self) -> Engine:
        """The engine of the write connection."""
        return self._engine

    def start(self) -> None:
        """Starts the thread (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()

    async def submit(self, run: Run) -> Any:
        """Queues ``run`` and waits for its batch to commit. A cancelled
        caller does not cancel the unit: once queued it commits or fails with
        its batch (a write is never left half-known). Cancelling the caller
        cancels only its future, which the writer then leaves alone: no
        ``asyncio.shield`` (an extra future and two callbacks per write) is
        needed for that."""
        self.start()
        loop = asyncio.get_running_loop()
        job = _Job(run, loop, loop.create_future())
        self._queue.put(job)
        return await job.future

    def stop(self) -> None:
        """Lets the queued units finish, then ends the thread."""
        if self._started and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)

    def _main(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                assert isinstance(first, _Job)
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    assert isinstance(more, _Job)
                    batch.append(more)
                if conn is None:
                    try:
                        conn = self._engine.connect()
                        # On the writer's first connection (the dialect
                        # knows the server then): the hot statements are
                        # compiled now, not by the first orders.
                        compile_all(conn.dialect)
                    except Exception as exc:
                        # No connection (an unwritable file, a locked
                        # database): this batch's callers hear why, and the
                        # next batch tries again. The thread never dies.
                        log.error("the SQLite writer cannot connect: %s", exc)
                        self._fail(batch, exc)
                        continue
                if not self._run_batch(conn, batch):
                    # Whatever state the failed commit left the connection in
                    # (SQLite does not always roll back), the next batch
                    # starts on a fresh one.
                    conn.invalidate()
                    conn.close()
                    conn = None
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _run_batch(self, conn: Connection, batch: list[_Job]) -> bool:
        """Runs and commits one batch; False when the commit failed."""
        committed = True
        started = time.perf_counter()
        try:
            with conn.begin():
                # The SAVEPOINTs on the driver's cursor: SQLAlchemy's
                # begin_nested() cost more than the unit's own statements.
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                ledger = self._begin_batch(conn)
                for job in batch:
                    cursor.execute("SAVEPOINT unit")
                    try:
                        job.result = job.run(conn, ledger)
                    except BaseException as exc:  # the unit's own error, for its caller
                        cursor.execute("ROLLBACK TO unit")
                        job.error = exc
                    cursor.execute("RELEASE unit")
                events = ledger.finish()
        except Exception as exc:
            # The batch's end or its commit failed (disk full, I/O error):
            # nothing of the batch is stored, and every caller is told so.
            log.error("group commit of %d units failed: %s", len(batch), exc)
            for job in batch:
                job.error = job.error or exc
            events = []
            committed = False
        self.batches += 1
        self.units += len(batch)
        if self.observe is not None:
            self.observe(time.perf_counter() - started, len(batch))
        loop = batch[0].loop
        # RuntimeError: the loop is closed, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._resolve, batch, events)
        return committed

    def _fail(self, batch: list[_Job], exc: Exception) -> None:
        for job in batch:
            job.error = exc
        with contextlib.suppress(RuntimeError):
            batch[0].loop.call_soon_threadsafe(self._resolve, batch, [])

    def _resolve(self, batch: list[_Job], events: list[StoredEvent]) -> None:
        if events:
            try:
                self._committed(events)
            except Exception:
                log.exception("handing committed events over failed")
        for job in batch:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
