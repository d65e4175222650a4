"""One client process of the fan-out benchmark: opens N WatchFreezeEvents
streams, records when each event arrives and how each stream ended (its
final status: still open at the end, or the code it closed with), and
writes a JSON summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc

METADATA = (("authorization", "Bearer dev-victor-token"),)
STREAMS_PER_CHANNEL = 50  # under the server's default 100 a connection


async def subscriber(
    stub: Any,
    ready: asyncio.Event,
    counts: dict[str, int],
    latencies: list[float],
    stop_at: float,
    events: int,
    statuses: dict[str, int],
) -> None:
    call = stub.WatchFreezeEvents(gov.WatchFreezeEventsRequest(), metadata=METADATA)
    first = True
    got = 0
    status = "OPEN_AT_END"
    try:
        while True:
            remaining = stop_at - time.time()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(call.read(), remaining)
            except TimeoutError:
                break
            if message is grpc.aio.EOF:
                status = "OK"
                break
            if first:
                first = False
                counts["opened"] += 1
                if counts["opened"] == counts["wanted"]:
                    ready.set()
            if message.WhichOneof("message") == "event":
                sent = message.event.time.ToNanoseconds() / 1e9
                latencies.append(time.time() - sent)
                counts["events"] += 1
                got += 1
                if got == events:
                    status = "DONE"
                    break
    except grpc.RpcError as exc:
        counts["refused" if first else "broken"] += 1
        status = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "ERROR"
    finally:
        statuses[status] = statuses.get(status, 0) + 1
        call.cancel()


async def main(target: str, streams: int, seconds: float, events: int) -> dict[str, Any]:
    # Each channel its own connection (gRPC shares one between channels of
    # the same target otherwise): subscribers spread as many clients' would,
    # within the server's per-connection stream limit.
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, (streams + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL))
    ]
    stubs = [governance_service_pb2_grpc.GovernanceServiceStub(c) for c in channels]
    counts = {"wanted": streams, "opened": 0, "events": 0, "refused": 0, "broken": 0}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    ready = asyncio.Event()
    stop_at = time.time() + seconds
    tasks = [
        asyncio.create_task(
            subscriber(stubs[i % len(stubs)], ready, counts, latencies, stop_at, events, statuses)
        )
        for i in range(streams)
    ]
    try:
        await asyncio.wait_for(ready.wait(), seconds)
        print("ready", flush=True)
    except TimeoutError:
        print("not-ready", flush=True)
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return {"counts": counts, "latencies": latencies, "statuses": statuses}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--events", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    summary = asyncio.run(main(args.target, args.streams, args.seconds, args.events))
    Path(args.out).write_text(json.dumps(summary))
