"""The resumable event streams (WatchFreezeEvents, WatchGovernanceEvents).

Subscribe first, then replay from the store, then go live, de-duplicating by
sequence: no gap and no duplicate across the switch. Frames are pre-serialized
response messages (sent through an identity serializer), so each event is
serialized once however many subscribers it has."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from govex_server.domain.errors import Category, GovexError, invalid_field
from govex_server.domain.events import EventKind
from govex_server.services.event_bus import (
    CLOSED,
    HEARTBEAT,
    REPLAY_PAGE,
    EventBus,
    HeartbeatFrame,
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def event_frame(event_payload: bytes, kind: str = "") -> bytes:
    """A Watch*Response with ``event`` (field 1) set to a serialized event.
    Both Watch responses put the event in field 1, so one frame fits both;
    an execution event is WatchOrdersResponse.execution_event (field 3)."""
    tag = b"\x1a" if kind == EventKind.EXECUTION_UPDATED.value else b"\x0a"
    return tag + length_delimited(event_payload)


def length_delimited(payload: bytes) -> bytes:
    """``payload`` preceded by its length as a varint (the protobuf wire form
    of a length-delimited field's value)."""
    return _varint(len(payload)) + payload


class EventStreams:
    """Serves one resumable stream per call."""

    def __init__(self, bus: EventBus, now: Callable[[], datetime]) -> None:
        self._bus = bus
        self._now = now

    async def stream(
        self,
        after_sequence: int,
        kinds: frozenset[str] | None,
        heartbeat: HeartbeatFrame,
        from_oldest: bool = False,
        resource_prefix: str = "",
    ) -> AsyncIterator[bytes]:
        """Frames of every event after ``after_sequence`` (0: only new ones)
        matching ``kinds``, then live events, with heartbeats when idle."""
        replay_after = await self._resume_point(after_sequence, from_oldest)
        sub = self._bus.subscribe(kinds, heartbeat, resource_prefix)
        try:
            if replay_after is None:
                # Subscribed first: events after this position reach the queue;
                # those up to it are de-duplicated below.
                last = sub.last_sent = max(sub.start_sequence, await self._bus.position())
            else:
                last = sub.last_sent = replay_after
            if replay_after is None:
                # Tells the client where "new" starts: a safe resume point
                # even if it is cut before its first event.
                yield heartbeat(last, self._now())
            else:
                while True:
                    rows = await self._bus.replay(last, kinds)
                    for row in rows:
                        if row.resource.startswith(resource_prefix):
                            yield event_frame(row.payload, row.kind)
                        last = sub.last_sent = row.sequence
                    if len(rows) < REPLAY_PAGE:
                        break
            while True:
                event = await sub.queue.get()
                if event.kind == CLOSED:
                    raise _closed(sub.close_reason, sub.last_sent)
                if event.kind == HEARTBEAT:
                    yield event.frame
                    continue
                if event.sequence <= last:
                    continue
                yield event.frame
                # Only this generator closes the stream, and only once gRPC
                # has taken the frame: the resume point it reports is exact.
                last = sub.last_sent = event.sequence
        finally:
            self._bus.unsubscribe(sub)

    async def _resume_point(self, after_sequence: int, from_oldest: bool) -> int | None:
        """The sequence to replay after, or None for "only new events"."""
        if after_sequence < 0:
            raise invalid_field("after_sequence", f"{after_sequence} is negative")
        if from_oldest and after_sequence:
            raise invalid_field("from_oldest", "only with after_sequence = 0")
        if after_sequence == 0 and not from_oldest:
            return None  # live only: no read at all
        newest, oldest = await self._bus.retained()
        first_retained = oldest if oldest is not None else newest + 1
        if from_oldest:
            return first_retained - 1
        if after_sequence == 0:
            return None
        if after_sequence > newest:
            raise GovexError(
                Category.OUT_OF_RANGE,
                "SEQUENCE_AHEAD",
                f"after_sequence {after_sequence} is beyond the newest event ({newest})",
                metadata={"newestSequence": str(newest)},
            )
        if after_sequence < first_retained - 1:
            raise GovexError(
                Category.OUT_OF_RANGE,
                "HISTORY_EXPIRED",
                f"events after {after_sequence} are no longer retained; the oldest "
                f"available is {first_retained}",
                metadata={"oldestSequence": str(first_retained)},
            )
        return after_sequence


def _closed(why: str, last_sent: int) -> GovexError:
    """The status that ends a stream the bus closed, saying where to resume."""
    resume = f"resume with after_sequence={last_sent}"
    metadata = {"lastSequence": str(last_sent)}
    if why == "overflow":
        return GovexError(
            Category.RESOURCE_EXHAUSTED,
            "SUBSCRIBER_TOO_SLOW",
            f"this stream fell behind; {resume}",
            metadata=metadata,
            retry_after_seconds=0,
        )
    return GovexError(
        Category.UNAVAILABLE,
        "SHUTTING_DOWN",
        f"the server is shutting down; {resume}",
        metadata=metadata,
        retry_after_seconds=1,
    )
