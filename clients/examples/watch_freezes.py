#!/usr/bin/env python3
"""What another team copies to follow freezes: each freeze as it is created
and as it ends, resumed after the last event across server restarts (the
client does that), until Ctrl-C. ``--count N`` stops after N events.

    clients/examples/watch_freezes.py --token dev-victor-token --from-oldest
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import events_pb2
from govex_client import ClientConfig, GovexClient, GovexRpcError


async def main() -> int:
    parser = argparse.ArgumentParser(description="follow govex freezes live")
    parser.add_argument("--target", default=None, help="host:port (default: GOVEX_TARGET)")
    parser.add_argument("--token", default=None, help="bearer token (default: GOVEX_TOKEN)")
    parser.add_argument("--from-oldest", action="store_true", help="replay what is retained")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events")
    args = parser.parse_args()
    # The client says on stderr when the stream was cut and where it resumes.
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    seen = 0
    subscribed = False
    async with GovexClient(ClientConfig.from_env(target=args.target, token=args.token)) as client:
        try:
            async for message in client.watch_freeze_events(from_oldest=args.from_oldest):
                if message.WhichOneof("message") == "heartbeat":
                    if not subscribed:  # everything from here on will be seen
                        print(
                            f"subscribed at sequence {message.heartbeat.current_sequence}",
                            flush=True,
                        )
                        subscribed = True
                    continue
                event = message.event
                kind = events_pb2.EventKind.Name(event.kind).removeprefix("EVENT_KIND_")
                freeze = event.freeze
                what = freeze_pb2.FreezeType.Name(freeze.type).removeprefix("FREEZE_TYPE_")
                print(
                    f"seq={event.sequence} {kind} {freeze.name} {what}: {freeze.reason}", flush=True
                )
                seen += 1
                if args.count and seen >= args.count:
                    return 0
        except GovexRpcError as error:
            print(f"refused: {error}")
            return 1
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except KeyboardInterrupt:
        raise SystemExit(0) from None
