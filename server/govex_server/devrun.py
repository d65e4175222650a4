"""``make run``: the server on the embedded defaults with the development
principals, printing their tokens and how to call it with grpcurl."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from govex_server import logs

logs.quiet_grpc_core()  # before grpc is imported (by app)

from govex_server.api.auth import token_sha256  # noqa: E402
from govex_server.app import serve  # noqa: E402
from govex_server.config import ConfigError, load_principals, load_settings  # noqa: E402

DEV_PRINCIPALS = Path("config/dev-principals.toml")
DEV_DATABASE = "sqlite:///var/govex.db"


def dev_tokens(path: Path) -> list[tuple[str, str, str]]:
    """``(name, kind, token)`` of each development principal; the token of
    ``name`` is ``dev-<name>-token``, checked against the file's hash."""
    rows = []
    for digest, principal in load_principals(str(path)).items():
        token = f"dev-{principal.name}-token"
        if token_sha256(token) != digest:
            raise ConfigError(f"{path}: {principal.name}'s hash is not that of {token}")
        roles = ",".join(sorted(r.value for r in principal.roles))
        rows.append((principal.name, f"{principal.kind.value}: {roles}", token))
    return sorted(rows)


def banner(listen: str, rows: list[tuple[str, str, str]]) -> str:
    """What a newcomer needs to make a first call."""
    lines = [
        "",
        "WARNING: development principals. These tokens are public; never use them in production.",
        "",
    ]
    lines += [f"  {name:<9} {token:<22} ({roles})" for name, roles, token in rows]
    g = ".venv/bin/grpcurl -plaintext"
    lines += [
        "",
        "Try (in another terminal):",
        f"  {g} {listen} list",
        f"  {g} -H 'authorization: Bearer dev-victor-token' {listen} "
        "govex.governance.v1.GovernanceService/GetGovernanceState",
        f"  {g} -H 'authorization: Bearer dev-alice-token' -d "
        """'{"targets":[{"asset":"BTC","weight_percent":60},{"asset":"USDT","weight_percent":40}],"""
        """"reason":"first plan"}' """
        f"{listen} govex.governance.v1.GovernanceService/ProposePlan",
        "More in README.md. Ctrl-C stops the server.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m govex_server.devrun``."""
    parser = argparse.ArgumentParser(description="govex on development defaults")
    parser.add_argument("--listen", default="127.0.0.1:50051")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(
            overrides={
                "listen": args.listen,
                "database_url": DEV_DATABASE,
                "principals_file": str(DEV_PRINCIPALS),
                "log_format": "text",
            },
            environ={},
        )
        rows = dev_tokens(DEV_PRINCIPALS)
    except ConfigError as exc:
        print(exc.lines("make run: "), file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    print(banner(settings.listen, rows), flush=True)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        print(exc.lines("make run: "), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
