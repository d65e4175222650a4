"""The ``govex`` command line (argparse)."""

from __future__ import annotations

import argparse
import os

from govex_client.core import DEFAULT_TARGET

PLAN_STEPS = ("review", "approve", "reject", "activate", "cancel")

# The output options are accepted after the command too (``govex plans show
# NAME --field etag``); SUPPRESS keeps a sub-command from resetting them.
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON out")
COMMON.add_argument("--field", default=argparse.SUPPRESS, help="print only this field")


def build_parser() -> argparse.ArgumentParser:
    """Every command; the connection settings come from GOVEX_* too."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="govex",
        description="govex: plans, the kill switch, executions and live views",
        epilog="Exit codes: 0 ok, 2 usage, 3 refused, 4 denied, 5 not found, "
        "6 conflict (read again), 7 unavailable (try later), 8 server failure.",
    )
    parser.add_argument("--target", default=env("GOVEX_TARGET") or DEFAULT_TARGET)
    parser.add_argument("--token", default=env("GOVEX_TOKEN", ""), help="or GOVEX_TOKEN")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per call")
    parser.add_argument("--ca-file", default=env("GOVEX_CA_FILE", ""), help="TLS: server CA (PEM)")
    parser.add_argument("--cert-file", default=env("GOVEX_CERT_FILE", ""), help="mTLS: client cert")
    parser.add_argument("--key-file", default=env("GOVEX_KEY_FILE", ""), help="mTLS: client key")
    parser.add_argument("--json", action="store_true", help="JSON instead of tables")
    parser.add_argument(
        "--field",
        default="",
        help="print only this field of the answer (e.g. etag, name, state): for scripts",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("state", parents=[COMMON], help="the governance state")
    commands.add_parser("cooldown", parents=[COMMON], help="when the next plan may be published")
    mode = commands.add_parser(
        "mode", parents=[COMMON], help="show the governance mode, or set it (admin)"
    )
    mode.add_argument("mode", nargs="?", help="MANUAL, AI_ASSISTED or FULL_AI")
    mode.add_argument("--etag", default="", help="the mode's etag (govex mode shows it)")
    mode.add_argument("--reason", default="")

    _plans(
        commands.add_parser("plans", parents=[COMMON], help="propose, list, show and walk plans")
    )

    freeze = commands.add_parser(
        "freeze", parents=[COMMON], help="stop operations (FULL_FREEZE: kill switch)"
    )
    freeze.add_argument("type", help="FULL_FREEZE, S3_ALERT_FREEZE or ERROR_FREEZE")
    freeze.add_argument("--reason", required=True)
    freeze.add_argument("--ttl", default="1h", help="how long: 30m, 2h, 1d (default 1h)")
    unfreeze = commands.add_parser(
        "unfreeze", parents=[COMMON], help="end a freeze, or --all of them"
    )
    unfreeze.add_argument("name", nargs="?", default="", help="freezes/{id}")
    unfreeze.add_argument("--all", action="store_true")
    unfreeze.add_argument("--reason", default="")
    freezes = commands.add_parser("freezes", parents=[COMMON], help="the active freezes")
    freezes.add_argument("--ended", action="store_true", help="ended ones too")
    check = commands.add_parser(
        "check", parents=[COMMON], help="may OPERATION run now? (exit 3 when blocked)"
    )
    check.add_argument("operation", help="PURCHASE, SELL_TO_STABLES, ROTATION, HEDGE, REBALANCING")

    signals = commands.add_parser("signals", parents=[COMMON], help="the ML signals")
    signal_commands = signals.add_subparsers(dest="signals_command", required=True)
    signal_commands.add_parser("show", parents=[COMMON], help="the signals in force and their age")
    publish = signal_commands.add_parser(
        "publish", parents=[COMMON], help="publish a signal set (JSON file)"
    )
    publish.add_argument("file", help="a SignalSet as JSON ('-': standard input)")

    execute = commands.add_parser("execute", parents=[COMMON], help="execute the ACTIVE plan")
    execute.add_argument("plan", help="plans/{id}")
    execute.add_argument("--etag", required=True, help="the plan's etag (plans show)")
    execute.add_argument("--dry-run", action="store_true", help="simulate: send nothing")
    execute.add_argument("--strategy", default="", help="SEQUENTIAL or PARALLEL")
    execute.add_argument("--max-parallel", type=int, default=0)
    execute.add_argument("--exchange", default="", help="exchanges/{id} (default account)")
    executions = commands.add_parser(
        "executions", parents=[COMMON], help="list executions, or show one"
    )
    executions.add_argument("name", nargs="?", default="", help="executions/{id}: show it")
    executions.add_argument("--state", action="append", default=[], help="e.g. RUNNING")
    stop = commands.add_parser("cancel-execution", parents=[COMMON], help="stop an execution")
    stop.add_argument("name")
    stop.add_argument("--reason", default="")
    orders = commands.add_parser("orders", parents=[COMMON], help="the orders of an execution")
    orders.add_argument("execution", help="executions/{id} (executions/-: of all)")
    orders.add_argument("--state", action="append", default=[], help="e.g. FILLED")

    watch = commands.add_parser("watch", parents=[COMMON], help="live views until Ctrl-C")
    what = watch.add_subparsers(dest="watch_command", required=True)
    watch_orders = what.add_parser(
        "orders", parents=[COMMON], help="executions' progress and orders live"
    )
    watch_orders.add_argument("execution", nargs="?", default="", help="executions/{id}")
    for name, text in (("freezes", "freezes as they come and go"), ("events", "every event")):
        cmd = what.add_parser(name, parents=[COMMON], help=text)
        cmd.add_argument("--after", type=int, default=0, help="resume after this sequence")
        cmd.add_argument("--from-oldest", action="store_true", help="replay what is retained")
    return parser


def _plans(plans: argparse.ArgumentParser) -> None:
    sub = plans.add_subparsers(dest="plans_command", required=True, metavar="STEP")
    listing = sub.add_parser("list", parents=[COMMON], help="plans, newest first")
    listing.add_argument("--state", action="append", default=[], help="e.g. ACTIVE (repeatable)")
    show = sub.add_parser("show", parents=[COMMON], help="one plan, with its etag")
    show.add_argument("name")
    diff = sub.add_parser(
        "diff", parents=[COMMON], help="target weights of a plan against another (or ACTIVE)"
    )
    diff.add_argument("name")
    diff.add_argument("other", nargs="?", default="", help="default: the ACTIVE plan")
    propose = sub.add_parser(
        "propose", parents=[COMMON], help="a new plan: ASSET=WEIGHT ... (summing to 100)"
    )
    propose.add_argument("targets", nargs="+")
    propose.add_argument("--reason", default="")
    propose.add_argument("--request-id", default="", help="default: a fresh one")
    for step in PLAN_STEPS:
        cmd = sub.add_parser(step, parents=[COMMON], help=f"{step} a plan at the etag you read")
        cmd.add_argument("name")
        cmd.add_argument(
            "--etag", required=True, help="the etag `govex plans show` printed: what you read"
        )
        text = "--comment" if step in ("review", "approve") else "--reason"
        cmd.add_argument(text, dest="text", default="", required=step == "reject")
        if step == "activate":
            cmd.add_argument("--override-cooldown", action="store_true")
