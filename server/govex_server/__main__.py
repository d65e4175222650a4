"""``govex-server serve``, ``migrate`` and ``verify-audit``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from govex_server import logs

logs.quiet_grpc_core()  # before grpc is imported (by app)

from govex_server.commands import migrate_only, serve, verify_audit  # noqa: E402
from govex_server.config import ConfigError, load_settings  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="govex-server", description="govex gRPC server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="migrate the database and serve gRPC")
    serve_cmd.add_argument("--listen", help="host:port (GOVEX_LISTEN)")
    serve_cmd.add_argument("--database-url", help="SQLAlchemy URL (GOVEX_DATABASE_URL)")
    serve_cmd.add_argument("--principals-file", help="principals TOML (GOVEX_PRINCIPALS_FILE)")
    serve_cmd.add_argument("--config", help="settings TOML file (GOVEX_CONFIG_FILE)")
    migrate_cmd = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate_cmd.add_argument("--database-url", help="SQLAlchemy URL (GOVEX_DATABASE_URL)")
    migrate_cmd.add_argument("--config", help="settings TOML file (GOVEX_CONFIG_FILE)")
    verify_cmd = commands.add_parser(
        "verify-audit",
        help="walk the audit log's hash chain: exit 0 with its count and head hash, "
        "or 1 with the first broken link",
    )
    verify_cmd.add_argument("--database-url", help="SQLAlchemy URL (GOVEX_DATABASE_URL)")
    verify_cmd.add_argument("--config", help="settings TOML file (GOVEX_CONFIG_FILE)")
    commands.add_parser(
        "protoset",
        help="write the contract's descriptor set, with its comments, to stdout "
        "(for grpcurl -protoset or buf curl --schema)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``govex-server`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "protoset":
        # Needs no settings: it is the contract, not the server's state.
        from govex_server.api.reflection import protoset_bytes

        sys.stdout.buffer.write(protoset_bytes())
        sys.stdout.buffer.flush()
        return 0
    overrides = {
        "listen": getattr(args, "listen", None),
        "database_url": getattr(args, "database_url", None),
        "principals_file": getattr(args, "principals_file", None),
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(exc.lines("govex-server: configuration error: "), file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "verify-audit":
            return asyncio.run(verify_audit(settings, print))
        if args.command == "migrate":
            asyncio.run(migrate_only(settings))
            logging.getLogger("govex").info("database migrated")
        else:
            asyncio.run(serve(settings))
    except ConfigError as exc:
        logs.flush()  # the lines logged before the error come before it
        print(exc.lines("govex-server: configuration error: "), file=sys.stderr)
        return 2
    except OSError as exc:
        logs.flush()
        print(f"govex-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
