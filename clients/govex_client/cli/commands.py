"""What each ``govex`` command does: calls through the client, returns what
to print (and, for ``check``, the exit code)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.table import Table

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.governance.v1 import plan_pb2, signals_pb2
from govex_client.cli.errors import OK, REFUSED, UsageError
from govex_client.client import GovexClient

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Custom:
    """Output that is not one message: a table for people, data for --json."""

    table: Table
    data: Any = field(default=None)


Output = Message | list[Message] | Custom


def enum(wrapper: Any, prefix: str, text: str, what: str) -> int:
    """``text`` (with or without the prefix, any case) as the enum's number;
    a UsageError listing the choices otherwise."""
    name = text.upper().removeprefix(prefix)
    names: list[str] = wrapper.keys()  # an enum wrapper's names
    choices = [n.removeprefix(prefix) for n in names if not n.endswith("UNSPECIFIED")]
    if name not in choices:
        raise UsageError(f"{what} {text!r} is not one of {', '.join(choices)}")
    return int(wrapper.Value(prefix + name))


def duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``90s``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"--ttl {text!r} is not a duration like 30m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def targets(pairs: list[str]) -> list[tuple[str, float]]:
    """``ASSET=WEIGHT`` pairs."""
    found = []
    for pair in pairs:
        asset, sep, weight = pair.partition("=")
        if not sep or not asset:
            raise UsageError(f"target {pair!r} is not ASSET=WEIGHT")
        try:
            found.append((asset, float(weight)))
        except ValueError:
            raise UsageError(f"the weight of {asset} is not a number: {weight!r}") from None
    return found


async def run(client: GovexClient, args: argparse.Namespace) -> tuple[Output, int]:
    """Performs one command."""
    command = args.command
    if command == "state":
        return await client.governance_state(), OK
    if command == "cooldown":
        return await client.cooldown_status(), OK
    if command == "mode":
        return await _mode(client, args), OK
    if command == "plans":
        return await _plans(client, args), OK
    if command == "freeze":
        kind = enum(freeze_pb2.FreezeType, "FREEZE_TYPE_", args.type, "freeze type")
        made = await client.freeze(kind, args.reason, ttl=duration(args.ttl))  # type: ignore[arg-type]
        return made, OK
    if command == "unfreeze":
        if bool(args.name) == bool(args.all):
            raise UsageError("give a freeze's name, or --all (not both)")
        return await client.unfreeze(args.name, all=args.all, reason=args.reason), OK  # type: ignore[return-value]
    if command == "freezes":
        return await client.list_freezes(include_ended=args.ended), OK  # type: ignore[return-value]
    if command == "check":
        operation = enum(freeze_pb2.Operation, "OPERATION_", args.operation, "operation")
        verdict = await client.check_operation(operation)  # type: ignore[arg-type]
        return verdict, OK if verdict.allowed else REFUSED
    if command == "signals":
        return await _signals(client, args), OK
    return await _execution(client, args), OK


async def _mode(client: GovexClient, args: argparse.Namespace) -> Output:
    if not args.mode:
        state = await client.governance_state()
        table = Table(show_edge=False, header_style="bold")
        table.add_column("MODE")
        table.add_column("ETAG")
        table.add_row(
            plan_pb2.GovernanceMode.Name(state.mode).removeprefix("GOVERNANCE_MODE_"),
            state.mode_etag,
        )
        return Custom(
            table, {"mode": plan_pb2.GovernanceMode.Name(state.mode), "etag": state.mode_etag}
        )
    if not args.etag:
        raise UsageError("setting the mode needs --etag (govex mode shows it)")
    mode = enum(plan_pb2.GovernanceMode, "GOVERNANCE_MODE_", args.mode, "mode")
    return await client.set_mode(mode, args.etag, args.reason)  # type: ignore[arg-type]


async def _plans(client: GovexClient, args: argparse.Namespace) -> Output:
    step = args.plans_command
    if step == "list":
        states = [enum(plan_pb2.PlanState, "PLAN_STATE_", s, "--state") for s in args.state]
        return await client.list_plans(states)  # type: ignore[arg-type,return-value]
    if step == "show":
        return await client.get_plan(args.name)
    if step == "diff":
        return await _diff(client, args.name, args.other)
    if step == "propose":
        return await client.propose_plan(
            targets(args.targets), args.reason, request_id=args.request_id
        )
    name, etag, text = args.name, args.etag, args.text
    if step == "review":
        return await client.review_plan(name, etag, text)
    if step == "approve":
        return await client.approve_plan(name, etag, text)
    if step == "reject":
        return await client.reject_plan(name, etag, text)
    if step == "activate":
        activated = await client.activate_plan(
            name, etag, override_cooldown=args.override_cooldown, override_reason=text
        )
        return activated.plan
    return await client.cancel_plan(name, etag, text)


async def _diff(client: GovexClient, name: str, other: str) -> Custom:
    plan = await client.get_plan(name)
    if other:
        base = await client.get_plan(other)
    else:
        active = await client.list_plans([plan_pb2.PLAN_STATE_ACTIVE])
        base = active[0] if active else plan_pb2.Plan(name="(no active plan)")
    mine = {t.asset: t.weight_percent for t in plan.targets}
    theirs = {t.asset: t.weight_percent for t in base.targets}
    table = Table(show_edge=False, header_style="bold", title=f"{base.name} -> {plan.name}")
    for column in ("ASSET", "FROM %", "TO %", "CHANGE"):
        table.add_column(column)
    rows = []
    for asset in sorted(set(mine) | set(theirs)):
        before, after = theirs.get(asset, 0.0), mine.get(asset, 0.0)
        rows.append({"asset": asset, "from": before, "to": after, "change": after - before})
        table.add_row(asset, f"{before:g}", f"{after:g}", f"{after - before:+g}")
    return Custom(table, {"from": base.name, "to": plan.name, "assets": rows})


async def _signals(client: GovexClient, args: argparse.Namespace) -> Output:
    if args.signals_command == "show":
        return await client.get_signals()
    raw = sys.stdin.read() if args.file == "-" else _read(args.file)
    try:
        signals = json_format.Parse(raw, signals_pb2.SignalSet())
    except json_format.ParseError as exc:
        raise UsageError(f"{args.file}: not a SignalSet: {exc}") from None
    return await client.publish_signals(signals)


def _read(path: str) -> str:
    return Path(path).read_text()


async def _execution(client: GovexClient, args: argparse.Namespace) -> Output:
    command = args.command
    if command == "execute":
        strategy = (
            enum(execution_pb2.ExecutionStrategy, "EXECUTION_STRATEGY_", args.strategy, "strategy")
            if args.strategy
            else 0
        )
        return await client.execute_plan(
            args.plan,
            args.etag,
            dry_run=args.dry_run,
            strategy=strategy,  # type: ignore[arg-type]
            max_parallel=args.max_parallel,
            exchange=args.exchange,
        )
    if command == "executions":
        if args.name:
            return await client.get_execution(args.name)
        states = [
            enum(execution_pb2.ExecutionState, "EXECUTION_STATE_", s, "--state") for s in args.state
        ]
        return await client.list_executions(states=states)  # type: ignore[arg-type,return-value]
    if command == "cancel-execution":
        return await client.cancel_execution(args.name, args.reason)
    if command == "orders":
        states = [enum(execution_pb2.OrderState, "ORDER_STATE_", s, "--state") for s in args.state]
        return await client.list_orders(args.execution, states=states)  # type: ignore[arg-type,return-value]
    raise UsageError(f"unknown command {command!r}")
