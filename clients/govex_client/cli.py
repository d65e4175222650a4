"""``govex``: the command line for operators (JSON out, errors decoded)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from govex_client.client import ClientConfig, GovexClient
from govex_client.errors import GovexRpcError


def _targets(pairs: list[str]) -> list[tuple[str, float]]:
    targets = []
    for pair in pairs:
        asset, sep, weight = pair.partition("=")
        if not sep:
            raise SystemExit(f"govex: target {pair!r} is not ASSET=WEIGHT")
        try:
            targets.append((asset, float(weight)))
        except ValueError:
            raise SystemExit(f"govex: weight of {asset} is not a number: {weight!r}") from None
    return targets


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="govex", description="govex command line")
    parser.add_argument("--target", default=os.environ.get("GOVEX_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("GOVEX_TOKEN", ""))
    parser.add_argument("--timeout", type=float, default=10.0)
    env = os.environ.get
    parser.add_argument("--ca-file", default=env("GOVEX_CA_FILE", ""), help="TLS: server CA (PEM)")
    parser.add_argument("--cert-file", default=env("GOVEX_CERT_FILE", ""), help="mTLS: client cert")
    parser.add_argument("--key-file", default=env("GOVEX_KEY_FILE", ""), help="mTLS: client key")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("state", help="the governance state")
    commands.add_parser("cooldown", help="when the next plan may be published")
    listing = commands.add_parser("plans", help="list plans, newest first")
    listing.add_argument("--state", action="append", default=[], help="e.g. ACTIVE (repeatable)")
    get = commands.add_parser("get", help="one plan")
    get.add_argument("name")
    propose = commands.add_parser("propose", help="propose a plan: ASSET=WEIGHT ...")
    propose.add_argument("targets", nargs="+")
    propose.add_argument("--reason", default="")
    propose.add_argument("--request-id", default="")
    for step in ("review", "approve", "reject", "activate", "cancel"):
        cmd = commands.add_parser(step, help=f"{step} a plan at its current etag")
        cmd.add_argument("name")
        cmd.add_argument("--text", default="", help="comment or reason")
        if step == "activate":
            cmd.add_argument("--override-cooldown", action="store_true")
    return parser


async def run(args: argparse.Namespace) -> Message:
    """Performs the command and returns the message to print."""
    config = ClientConfig(
        target=args.target,
        token=args.token,
        timeout_seconds=args.timeout,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
    )
    async with GovexClient(config) as client:
        if args.command == "state":
            return await client.governance_state()
        if args.command == "cooldown":
            return await client.cooldown_status()
        if args.command == "plans":
            states = [plan_pb2.PlanState.Value(f"PLAN_STATE_{s.upper()}") for s in args.state]
            plans = await client.list_plans(states)
            return gov.ListPlansResponse(plans=plans)
        if args.command == "get":
            return await client.get_plan(args.name)
        if args.command == "propose":
            return await client.propose_plan(_targets(args.targets), args.reason, args.request_id)
        plan = await client.get_plan(args.name)
        extra = {}
        if args.command == "activate" and args.override_cooldown:
            extra["override_cooldown"] = True
        return await client.advance(args.command, plan, args.text, **extra)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``govex`` console script."""
    args = build_parser().parse_args(argv)
    try:
        message = asyncio.run(run(args))
    except GovexRpcError as error:
        print(f"govex: {error}", file=sys.stderr)
        for field, description in error.field_violations:
            print(f"  field {field}: {description}", file=sys.stderr)
        if error.retry_delay is not None:
            print(f"  retry after {error.retry_delay}", file=sys.stderr)
        return 1
    print(MessageToJson(message, preserving_proto_field_name=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
