"""Fan-out of the event log to stream subscribers.

Events committed by this process are handed to the bus by the store right
after their transaction commits (before the writer hears back), so the bus
never reads back what this replica wrote. Events of other replicas
(PostgreSQL) arrive by LISTEN/NOTIFY, which pokes the bus to read the store;
a slow poll is the safety net. Either way events are delivered strictly in
sequence order: one that arrives ahead of a missing sequence waits until the
store has filled the gap.

Each event is serialized once into a frame shared by every subscriber. The
bus never waits for a subscriber: one whose queue is full is closed (its
stream ends with RESOURCE_EXHAUSTED and it resumes from its last sequence).
Heartbeats come from one ticker for all streams, one frame per stream kind
per tick, so an idle subscriber costs no timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from govex_server.services.next_read import NextRead
from govex_server.store.database import Store
from govex_server.store.repositories import StoredEvent

log = logging.getLogger("govex.events")
BATCH = 1000
REPLAY_PAGE = 500

FrameEncoder = Callable[[bytes, str], bytes]
HeartbeatFrame = Callable[[int, datetime], bytes]

HEARTBEAT = "heartbeat"
CLOSED = "closed"


@dataclass(frozen=True)
class BusEvent:
    """One event (or a heartbeat, or the end of the stream) as a subscriber
    receives it."""

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
    heartbeat: HeartbeatFrame
    resource_prefix: str = ""
    last_sent: int = 0
    close_reason: str = ""
    busy: bool = False  # got something since the last heartbeat tick

    @property
    def closed(self) -> bool:
        """True once the bus has closed this subscription."""
        return bool(self.close_reason)

    def wants(self, kind: str, resource: str = "") -> bool:
        """True when the filters let an event through."""
        return (self.kinds is None or kind in self.kinds) and resource.startswith(
            self.resource_prefix
        )


class EventBus:
    """The in-process fan-out of the event log."""

    def __init__(
        self,
        store: Store,
        frame: FrameEncoder,
        queue_size: int,
        poll_seconds: float,
        heartbeat_seconds: float = 15.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._frame = frame
        self._queue_size = queue_size
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._now = now or (lambda: datetime.now().astimezone())
        self._subscribers: set[Subscription] = set()
        self._poke = asyncio.Event()
        self._last = 0
        self._ahead: dict[int, StoredEvent] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Reads shared by streams opening together (next_read.py).
        self._newest: NextRead[None, int] = NextRead(
            lambda _: self._store.read(lambda uow: uow.events.newest())
        )
        self._retained: NextRead[None, tuple[int, int | None]] = NextRead(
            lambda _: self._store.read(lambda uow: (uow.events.newest(), uow.events.oldest()))
        )
        self.replay_pages: NextRead[tuple[int, tuple[str, ...] | None], list[StoredEvent]] = (
            NextRead(self._replay_page)
        )
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
        self._last = await self._store.read(lambda uow: uow.events.newest())
        self._tasks = [
            asyncio.create_task(self._pump(), name="event-bus"),
            asyncio.create_task(self._ticker(), name="event-heartbeats"),
        ]

    async def stop(self) -> None:
        """Stops the pump and the heartbeats."""
        self._newest.cancel()
        self._retained.cancel()
        self.replay_pages.cancel()
        for task in self._tasks:
            task.cancel()
        # Bounded: a task stuck in I/O must not keep the server from stopping.
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=10)
            for task in stuck:
                log.error("event bus task %s did not stop", task.get_name())

    def poke(self) -> None:
        """Events of another replica may be in the store."""
        self._poke.set()

    def publish(self, events: list[StoredEvent]) -> None:
        """Events this process has just committed, in sequence order."""
        for event in events:
            if event.sequence > self._last:
                self._ahead[event.sequence] = event
        self._drain()
        if self._ahead:
            # A sequence before these is missing: another replica's (or a
            # concurrent transaction's) commit we have not seen yet.
            self._poke.set()

    async def position(self) -> int:
        """The newest committed sequence, for a stream that starts live.

        On SQLite that is what the bus has: this process is the only writer
        and hands every event over before its writer hears back. On
        PostgreSQL another replica may have committed events this bus has not
        heard of yet, so the store is asked; streams that open together share
        one read (never one that began before they asked)."""
        if self._store.is_sqlite:
            return self._last
        return max(await self._newest.get(None), self._last)

    async def retained(self) -> tuple[int, int | None]:
        """The newest committed sequence and the oldest still retained (None
        when none is), for a stream that resumes; shared like ``position``."""
        return await self._retained.get(None)

    async def replay(self, after: int, kinds: frozenset[str] | None) -> list[StoredEvent]:
        """Stored events after ``after`` (of ``kinds``), a page at a time;
        streams resuming from the same point together share each page read."""
        return await self.replay_pages.get(
            (after, tuple(sorted(kinds)) if kinds is not None else None)
        )

    async def _replay_page(self, key: tuple[int, tuple[str, ...] | None]) -> list[StoredEvent]:
        after, kinds = key
        return await self._store.read(
            lambda uow: uow.events.after(
                after, list(kinds) if kinds is not None else None, REPLAY_PAGE
            )
        )

    def subscribe(
        self,
        kinds: frozenset[str] | None,
        heartbeat: HeartbeatFrame,
        resource_prefix: str = "",
    ) -> Subscription:
        """A new subscription, receiving events after ``current_sequence``."""
        sub = Subscription(
            kinds, asyncio.Queue(self._queue_size), self._last, heartbeat, resource_prefix
        )
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stops delivering to ``sub``."""
        self._subscribers.discard(sub)

    def close_all(self) -> None:
        """Ends every stream (at shutdown); clients resume elsewhere or later."""
        for sub in list(self._subscribers):
            self._close(sub, "shutdown")

    # --------------------------------------------------------------- inside

    def _drain(self) -> None:
        while self._last + 1 in self._ahead:
            self._deliver(self._ahead.pop(self._last + 1))
        for stale in [s for s in self._ahead if s <= self._last]:
            del self._ahead[stale]

    def _deliver(self, row: StoredEvent) -> None:
        event = BusEvent(row.sequence, row.kind, self._frame(row.payload, row.kind), row.resource)
        self._last = row.sequence
        for sub in list(self._subscribers):
            if not sub.wants(event.kind, event.resource):
                continue
            try:
                sub.queue.put_nowait(event)
                sub.busy = True
                self.delivered += 1
            except asyncio.QueueFull:
                self.dropped_subscribers += 1
                log.warning("stream subscriber fell behind at %d; closing it", sub.last_sent)
                self._close(sub, "overflow")

    def _close(self, sub: Subscription, why: str) -> None:
        self._subscribers.discard(sub)
        sub.close_reason = why
        if sub.queue.full():
            # Room for the end marker; the subscriber resumes from what it
            # last sent, so the dropped event is not lost.
            sub.queue.get_nowait()
        sub.queue.put_nowait(BusEvent(sub.last_sent, CLOSED, b""))

    async def _pump(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self._poll_seconds)
            self._poke.clear()
            try:
                while True:
                    after = self._last
                    rows = await self._store.read(
                        lambda uow: uow.events.after(after, None, BATCH)  # noqa: B023 - awaited
                    )
                    for row in rows:
                        if row.sequence == self._last + 1:
                            self._deliver(row)
                    self._drain()
                    if len(rows) < BATCH:
                        break
            except Exception:
                log.exception("reading new events failed; retrying")
                await asyncio.sleep(0.5)
                self._poke.set()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            frames: dict[HeartbeatFrame, bytes] = {}
            now = self._now()
            for sub in list(self._subscribers):
                if sub.busy:
                    sub.busy = False
                    continue
                frame = frames.get(sub.heartbeat)
                if frame is None:
                    frame = frames[sub.heartbeat] = sub.heartbeat(self._last, now)
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(BusEvent(self._last, HEARTBEAT, frame))
