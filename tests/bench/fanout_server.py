"""The fan-out baseline: a bare grpc.aio server with govex's WatchFreezeEvents
and Freeze method names, no store, no auth. Freeze serializes one event and
hands the same bytes to every subscriber's queue; each stream starts with a
heartbeat, as govex's do. Same server options as govex, so the comparison is
of what govex adds, not of gRPC settings."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from govex.governance.v1 import events_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.api.transport import SERVER_OPTIONS

SERVICE = "govex.governance.v1.GovernanceService"
subscribers: set[asyncio.Queue[bytes]] = set()
sequence = [0]  # the last event's sequence (a list: module state without global)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


async def _watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue(1000)
    subscribers.add(queue)
    try:
        beat = events_pb2.Heartbeat(current_sequence=sequence[0], time=_now())
        yield gov.WatchFreezeEventsResponse(heartbeat=beat).SerializeToString()
        while True:
            yield await queue.get()
    finally:
        subscribers.discard(queue)


async def _freeze(request: bytes, context: Any) -> bytes:
    sequence[0] += 1
    event = events_pb2.GovernanceEvent(sequence=sequence[0], time=_now())
    frame = gov.WatchFreezeEventsResponse(event=event).SerializeToString()
    for queue in list(subscribers):
        queue.put_nowait(frame)
    return b""


async def main(port: int) -> None:
    """Serves until killed."""
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "WatchFreezeEvents": grpc.unary_stream_rpc_method_handler(_watch),
            "Freeze": grpc.unary_unary_rpc_method_handler(_freeze),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
