"""Server-sent events for the console: every committed event as an SSE
message (its sequence as the id, so a browser that reconnects sends
Last-Event-ID and misses nothing), from the same resumable streams as the
gRPC Watch RPCs. Pages refresh what they show when a message arrives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import events_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.api.streams import EventStreams
from govex_server.domain.errors import GovexError

_HEARTBEAT = b"\x00heartbeat"


def _heartbeat(sequence: int, _now: datetime) -> bytes:
    return _HEARTBEAT + str(sequence).encode()


def sse(frame: bytes) -> str:
    """One stream frame as an SSE message (a heartbeat as a comment)."""
    if frame.startswith(_HEARTBEAT):
        return f": position {frame[len(_HEARTBEAT) :].decode()}\n\n"
    if frame[:1] == b"\x1a":  # an execution's change (WatchOrdersResponse field 3)
        change = exe.WatchOrdersResponse.FromString(frame).execution_event
        data = {"kind": "EXECUTION_UPDATED", "resource": change.execution.name}
        return f"id: {change.sequence}\nevent: change\ndata: {json.dumps(data)}\n\n"
    event = gov.WatchGovernanceEventsResponse.FromString(frame).event
    kind = events_pb2.EventKind.Name(event.kind).removeprefix("EVENT_KIND_")
    data = {"kind": kind, "resource": event.resource}
    return f"id: {event.sequence}\nevent: change\ndata: {json.dumps(data)}\n\n"


class LiveEvents:
    """``GET /events``: the event stream of the signed-in browser."""

    def __init__(self, streams: EventStreams) -> None:
        self._streams = streams

    async def stream(self, request: Request) -> Response:
        resume = request.headers.get("last-event-id", "0")
        after = int(resume) if resume.isdigit() else 0
        try:
            frames = self._streams.stream(after, None, _heartbeat)
            first = await anext(frames)  # a refusal comes before the 200
        except GovexError:
            # A resume point no longer retained (or ahead): start live; the
            # page re-reads everything on its first message anyway.
            frames = self._streams.stream(0, None, _heartbeat)
            first = await anext(frames)

        async def body() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            yield sse(first)
            try:
                async for frame in frames:
                    if await request.is_disconnected():
                        return
                    yield sse(frame)
            except GovexError:
                return  # the server is shutting down: the browser reconnects

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
