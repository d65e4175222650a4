"""What another team copies to propose a plan and follow it.

python clients/examples/propose_plan.py --token dev-alice-token BTC=50 ETH=20 USDT=30
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from govex_client.client import ClientConfig, GovexClient
from govex_client.errors import GovexRpcError


async def main() -> int:
    """Proposes a plan (idempotently, by request_id) and prints its name and etag."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--token", required=True)
    parser.add_argument("--reason", default="proposed by the example client")
    parser.add_argument("targets", nargs="+", help="ASSET=WEIGHT, weights summing to 100")
    args = parser.parse_args()
    targets = [(a, float(w)) for a, _, w in (t.partition("=") for t in args.targets)]
    # A request_id makes the call safe to retry: a repeat returns the first plan.
    request_id = str(uuid.uuid4())
    async with GovexClient(ClientConfig(target=args.target, token=args.token)) as client:
        try:
            plan = await client.propose_plan(targets, args.reason, request_id=request_id)
        except GovexRpcError as error:
            print(f"refused: {error}")
            for field, why in error.field_violations:
                print(f"  {field}: {why}")
            return 1
    print(f"{plan.name} is {plan.state} at etag {plan.etag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
