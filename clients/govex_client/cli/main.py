"""The ``govex`` command line, built on the client. Tables by
default, ``--json`` for scripts, one-line errors with a hint, an exit code
per status class (cli/errors.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console

from govex_client.cli import errors
from govex_client.cli.commands import Custom, run
from govex_client.cli.errors import UsageError
from govex_client.cli.parser import build_parser
from govex_client.cli.render import field_text, show
from govex_client.cli.watch import watch_events, watch_orders
from govex_client.client import ClientConfig, GovexClient
from govex_client.errors import GovexRpcError


async def _main(args: argparse.Namespace, console: Console) -> int:
    config = ClientConfig.from_env(
        target=args.target,
        token=args.token,
        timeout_seconds=args.timeout,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
    )
    async with GovexClient(config) as client:
        if args.command == "watch":
            if args.watch_command == "orders":
                return await watch_orders(client, args.execution, console, args.json)
            return await watch_events(
                client, args.watch_command == "freezes", args.json, args.after, args.from_oldest
            )
        output, code = await run(client, args)
    if isinstance(output, Custom):
        if args.json:
            import json

            print(json.dumps(output.data, indent=2))
        else:
            console.print(output.table)
    elif args.field:
        print(field_text(output, args.field))
    else:
        show(console, output, args.json)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``govex`` console script."""
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 250  # a pipe or a file gets whole rows, not 80 columns
    try:
        return asyncio.run(_main(args, console))
    except UsageError as exc:
        print(f"govex: {exc}", file=sys.stderr)
        return errors.USAGE
    except GovexRpcError as error:
        for line in errors.describe(error, args.target, bool(args.token)):
            print(line, file=sys.stderr)
        return errors.exit_code(error)
    except (OSError, ValueError) as exc:  # an unreadable file, a bad TLS setting
        print(f"govex: {exc}", file=sys.stderr)
        return errors.USAGE
    except KeyboardInterrupt:
        return errors.OK


if __name__ == "__main__":
    sys.exit(main())
