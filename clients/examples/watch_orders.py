"""What another team copies to follow an execution live: every order change,
resumed from the last sequence if the stream is cut, until the execution
ends.

    python clients/examples/watch_orders.py --token dev-victor-token \\
        --execution executions/01J...
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc

from govex.execution.v1 import execution_pb2, execution_service_pb2_grpc
from govex.execution.v1 import execution_service_pb2 as exe
from govex_client.errors import GovexRpcError

RESUMABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


async def watch(target: str, token: str, execution: str) -> int:
    """Prints order changes; returns 0 when the execution has ended."""
    metadata = (("authorization", f"Bearer {token}"),)
    last, backoff = 0, 0.2
    while True:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = execution_service_pb2_grpc.ExecutionServiceStub(channel)
            request = exe.WatchOrdersRequest(
                execution=execution, after_sequence=last, from_oldest=last == 0
            )
            try:
                async for message in stub.WatchOrders(request, metadata=metadata):
                    backoff = 0.2
                    kind = message.WhichOneof("message")
                    if kind == "heartbeat":
                        continue
                    if kind == "execution_event":
                        change = message.execution_event
                        if change.sequence <= last:
                            continue
                        last = change.sequence
                        state = execution_pb2.ExecutionState.Name(change.execution.state)
                        print(
                            f"seq={change.sequence} {change.execution.name} "
                            f"{state.removeprefix('EXECUTION_STATE_')}: "
                            f"{change.execution.state_reason}",
                            flush=True,
                        )
                        if execution and change.type == execution_pb2.EXECUTION_EVENT_TYPE_ENDED:
                            print(f"execution ended: {state.removeprefix('EXECUTION_STATE_')}")
                            return 0
                        continue
                    event = message.event
                    if event.sequence <= last:
                        continue  # never print twice
                    last = event.sequence
                    order = event.order
                    state = execution_pb2.OrderState.Name(order.state).removeprefix("ORDER_STATE_")
                    side = execution_pb2.OrderSide.Name(order.side).removeprefix("ORDER_SIDE_")
                    print(
                        f"seq={event.sequence} {order.client_order_id} {side} {order.symbol} "
                        f"{order.filled_quantity.value}/{order.quantity.value} {state}",
                        flush=True,
                    )
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
    parser = argparse.ArgumentParser(description="follow govex orders live")
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--token", required=True)
    parser.add_argument("--execution", default="", help="executions/{id}; empty for all")
    args = parser.parse_args()
    try:
        return asyncio.run(watch(args.target, args.token, args.execution))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
