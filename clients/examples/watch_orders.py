#!/usr/bin/env python3
"""What another team copies to follow an execution: every order change
until the execution ends. The client resumes the stream after its last event
when the server restarts, so nothing is missed or printed twice; an
execution that has already ended is reported at once.

    clients/examples/watch_orders.py --token dev-victor-token --execution executions/01J...
"""

from __future__ import annotations

import argparse
import asyncio

from govex.execution.v1 import execution_pb2
from govex_client import ClientConfig, GovexClient, GovexRpcError

ENDED = {
    execution_pb2.EXECUTION_STATE_SUCCEEDED,
    execution_pb2.EXECUTION_STATE_PARTIALLY_FILLED,
    execution_pb2.EXECUTION_STATE_FAILED,
    execution_pb2.EXECUTION_STATE_CANCELLED,
    execution_pb2.EXECUTION_STATE_SIMULATED,
}


def _state(execution: execution_pb2.Execution) -> str:
    return execution_pb2.ExecutionState.Name(execution.state).removeprefix("EXECUTION_STATE_")


def _order(order: execution_pb2.Order) -> str:
    state = execution_pb2.OrderState.Name(order.state).removeprefix("ORDER_STATE_")
    side = execution_pb2.OrderSide.Name(order.side).removeprefix("ORDER_SIDE_")
    return (
        f"{order.client_order_id} {side} {order.symbol} "
        f"{order.filled_quantity.value}/{order.quantity.value} {state}"
    )


async def watch(client: GovexClient, name: str) -> int:
    """Prints order changes of ``name``; 0 once it has ended."""
    current = await client.get_execution(name)
    if current.state in ENDED:  # its legs may all have been skipped: no event will come
        for order in await client.list_orders(name):
            print(_order(order))
        print(f"execution ended: {_state(current)} {current.state_reason}")
        return 0
    async for message in client.watch_orders(name, from_oldest=True):
        kind = message.WhichOneof("message")
        if kind == "event":
            print(f"seq={message.event.sequence} {_order(message.event.order)}", flush=True)
        elif kind == "execution_event":
            change = message.execution_event
            print(f"seq={change.sequence} {name} {_state(change.execution)}", flush=True)
            if change.type == execution_pb2.EXECUTION_EVENT_TYPE_ENDED:
                print(f"execution ended: {_state(change.execution)}")
                return 0
    return 1  # the server ended the stream


async def main() -> int:
    parser = argparse.ArgumentParser(description="follow a govex execution's orders live")
    parser.add_argument("--target", default=None, help="host:port (default: GOVEX_TARGET)")
    parser.add_argument("--token", default=None, help="bearer token (default: GOVEX_TOKEN)")
    parser.add_argument("--execution", required=True, help="executions/{id}")
    args = parser.parse_args()
    async with GovexClient(ClientConfig.from_env(target=args.target, token=args.token)) as client:
        try:
            return await watch(client, args.execution)
        except GovexRpcError as error:
            print(f"refused: {error}")
            return 1


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except KeyboardInterrupt:
        raise SystemExit(0) from None
