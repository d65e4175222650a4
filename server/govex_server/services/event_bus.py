"""Fan-out of the event log to stream subscribers.

One pump reads new events from the store (woken by our own commits and by
other replicas' notifications, with a slow poll as a safety net) and hands
each one, serialized once, to every matching subscriber's bounded queue. The
pump never waits for a subscriber: one whose queue is full is dropped and told
so (its stream ends with RESOURCE_EXHAUSTED and it resumes from its last
sequence, replaying from the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from govex_server.store.database import Store

log = logging.getLogger("govex.events")
BATCH = 1000

FrameEncoder = Callable[[bytes], bytes]


@dataclass(frozen=True)
class BusEvent:
    """One event as subscribers receive it."""

    sequence: int
    kind: str
    frame: bytes
    resource: str = ""


@dataclass(eq=False)
class Subscription:
    """One subscriber: its filter, its queue and where it stands."""

    kinds: frozenset[str] | None
    queue: asyncio.Queue[BusEvent]
    start_sequence: int
    close: Callable[[str], Coroutine[Any, Any, None]]
    resource_prefix: str = ""
    last_sent: int = 0
    closed: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def wants(self, kind: str, resource: str = "") -> bool:
        """True when the filters let an event through."""
        return (self.kinds is None or kind in self.kinds) and resource.startswith(
            self.resource_prefix
        )


class EventBus:
    """The in-process fan-out of the event log."""

    def __init__(
        self, store: Store, frame: FrameEncoder, queue_size: int, poll_seconds: float
    ) -> None:
        self._store = store
        self._frame = frame
        self._queue_size = queue_size
        self._poll_seconds = poll_seconds
        self._subscribers: set[Subscription] = set()
        self._poke = asyncio.Event()
        self._last = 0
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.dropped_subscribers = 0

    @property
    def current_sequence(self) -> int:
        """The newest sequence handed to subscribers."""
        return self._last

    @property
    def subscriber_count(self) -> int:
        """How many streams are subscribed."""
        return len(self._subscribers)

    async def start(self) -> None:
        """Starts after the newest stored event (history is replayed from the
        store by each stream, not by the bus)."""
        async with self._store.read() as uow:
            self._last = await uow.events.newest()
        self._task = asyncio.create_task(self._pump(), name="event-bus")

    async def stop(self) -> None:
        """Stops the pump."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """New events may be in the store."""
        self._poke.set()

    def subscribe(
        self,
        kinds: frozenset[str] | None,
        close: Callable[[str], Coroutine[Any, Any, None]],
        resource_prefix: str = "",
    ) -> Subscription:
        """A new subscription, receiving events after ``current_sequence``.
        ``close(why)`` ends its stream from outside ("overflow" or "shutdown")."""
        sub = Subscription(
            kinds, asyncio.Queue(self._queue_size), self._last, close, resource_prefix
        )
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stops delivering to ``sub``."""
        self._subscribers.discard(sub)

    async def _pump(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self._poll_seconds)
            self._poke.clear()
            try:
                while True:
                    async with self._store.read() as uow:
                        rows = await uow.events.after(self._last, None, BATCH)
                    for row in rows:
                        self._deliver(
                            BusEvent(row.sequence, row.kind, self._frame(row.payload), row.resource)
                        )
                        self._last = row.sequence
                    if len(rows) < BATCH:
                        break
            except Exception:
                log.exception("reading new events failed; retrying")
                await asyncio.sleep(0.5)
                self._poke.set()

    def _deliver(self, event: BusEvent) -> None:
        for sub in list(self._subscribers):
            if not sub.wants(event.kind, event.resource):
                continue
            try:
                sub.queue.put_nowait(event)
                self.delivered += 1
            except asyncio.QueueFull:
                self.dropped_subscribers += 1
                self._drop(sub, "overflow")

    def close_all(self) -> None:
        """Ends every stream (at shutdown); clients resume elsewhere or later."""
        for sub in list(self._subscribers):
            self._drop(sub, "shutdown")

    def _drop(self, sub: Subscription, why: str) -> None:
        self._subscribers.discard(sub)
        sub.closed = True
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(sub.close(why))
        sub._tasks.add(task)
        task.add_done_callback(sub._tasks.discard)
