"""What another team copies to follow freeze events: connect with the
generated stubs and a token, print each event, and when the server goes away
reconnect and resume from the last sequence, so nothing is missed or repeated.

    python clients/examples/watch_freezes.py --token dev-victor-token
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc

from govex.governance.v1 import events_pb2, governance_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2 as gov
from govex_client.errors import GovexRpcError

# Worth retrying: the server restarting (UNAVAILABLE), us falling behind
# (RESOURCE_EXHAUSTED), a dropped connection (CANCELLED by the transport).
RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


async def watch(target: str, token: str, after: int, count: int) -> int:
    """Prints freeze events until ``count`` were printed (0: forever)."""
    metadata = (("authorization", f"Bearer {token}"),)
    last, printed, backoff = after, 0, 0.2
    while True:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
            call = stub.WatchFreezeEvents(
                gov.WatchFreezeEventsRequest(after_sequence=last), metadata=metadata
            )
            try:
                async for message in call:
                    backoff = 0.2
                    if message.WhichOneof("message") == "heartbeat":
                        # Everything up to it was delivered: a safe resume point.
                        if last == 0:
                            print(f"subscribed at sequence {message.heartbeat.current_sequence}")
                        last = max(last, message.heartbeat.current_sequence)
                        continue
                    event = message.event
                    if event.sequence <= last:
                        continue  # never print twice
                    last = event.sequence
                    kind = events_pb2.EventKind.Name(event.kind).removeprefix("EVENT_KIND_")
                    who = event.actor or "govex"
                    print(f"seq={event.sequence} {kind} {event.resource} by={who}")
                    sys.stdout.flush()
                    printed += 1
                    if count and printed >= count:
                        return 0
            except grpc.RpcError as exc:
                error = GovexRpcError.from_rpc_error(exc)
                if error.code not in RESUMABLE:
                    print(f"stream refused: {error}", file=sys.stderr)
                    return 1
                print(f"stream cut ({error.code.name}); resuming after {last}", file=sys.stderr)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)


def main() -> int:
    """Command line of the example."""
    parser = argparse.ArgumentParser(description="print govex freeze events")
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--token", required=True)
    parser.add_argument("--after", type=int, default=0, help="resume after this sequence")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events")
    args = parser.parse_args()
    try:
        return asyncio.run(watch(args.target, args.token, args.after, args.count))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
