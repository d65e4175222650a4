#!/usr/bin/env python3
"""What another team copies to propose a plan: one call, safe to retry (the
client sends a request_id, so a repeat returns the first plan).

    clients/examples/propose_plan.py --token dev-alice-token BTC=50 ETH=20 USDT=30
"""

from __future__ import annotations

import argparse
import asyncio

from govex.governance.v1 import plan_pb2
from govex_client import ClientConfig, GovexClient, GovexRpcError


async def main() -> int:
    """Proposes a plan and prints its name, state and etag."""
    parser = argparse.ArgumentParser(description="propose a govex plan")
    parser.add_argument("--target", default=None, help="host:port (default: GOVEX_TARGET)")
    parser.add_argument("--token", default=None, help="bearer token (default: GOVEX_TOKEN)")
    parser.add_argument("--reason", default="proposed by the example client")
    parser.add_argument("targets", nargs="+", help="ASSET=WEIGHT, weights summing to 100")
    args = parser.parse_args()
    targets = [(a, float(w)) for a, _, w in (t.partition("=") for t in args.targets)]
    config = ClientConfig.from_env(target=args.target, token=args.token)
    async with GovexClient(config) as client:
        try:
            plan = await client.propose_plan(targets, args.reason)
        except GovexRpcError as error:
            print(f"refused: {error}")
            for field, why in error.field_violations:
                print(f"  {field}: {why}")
            return 1
    state = plan_pb2.PlanState.Name(plan.state).removeprefix("PLAN_STATE_")
    print(f"{plan.name} is {state} at etag {plan.etag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
