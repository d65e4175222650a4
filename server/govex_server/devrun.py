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
from govex_server.commands import serve  # noqa: E402
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


def banner(
    listen: str, rows: list[tuple[str, str, str]], metrics: str = "", console: str = ""
) -> str:
    """What a newcomer needs to make a first call."""
    lines = [
        "",
        "WARNING: development principals. These tokens are public; never use them in production.",
        "",
    ]
    lines += [f"  {name:<9} {token:<22} ({roles})" for name, roles, token in rows]
    lines += [
        "",
        "Try (in another terminal, from this directory):",
        f"  export GOVEX={listen} GOVEX_TARGET={listen}",
        "  GOVEX_TOKEN=dev-alice-token .venv/bin/govex plans propose BTC=60 USDT=40",
        "  GOVEX_TOKEN=dev-victor-token .venv/bin/govex plans list",
        "  .venv/bin/grpcurl -plaintext -H 'authorization: Bearer dev-victor-token' $GOVEX "
        "govex.governance.v1.GovernanceService/GetGovernanceState",
    ]
    if metrics:
        lines.append(f"  curl -s http://{metrics}/metrics | grep '^govex_'")
    if console:
        lines.append(f"The console: http://{console}/ (sign in with a token above)")
    lines += ["The README's quick start goes on from there. Ctrl-C stops the server.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m govex_server.devrun``."""
    parser = argparse.ArgumentParser(description="govex on development defaults")
    parser.add_argument("--listen", default="127.0.0.1:50051")
    parser.add_argument("--metrics-listen", default="127.0.0.1:9464", help="empty: off")
    parser.add_argument("--console-listen", default="127.0.0.1:8080", help="empty: off")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(
            overrides={
                "listen": args.listen,
                "metrics_listen": args.metrics_listen,
                "console_listen": args.console_listen,
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
    text = banner(settings.listen, rows, settings.metrics_listen, settings.console_listen)
    try:
        # Printed once the server answers: what it says to try works at once.
        # The log lines queued so far (the server's "serving" line) first.
        asyncio.run(serve(settings, on_serving=lambda _: _say(text)))
    except ConfigError as exc:
        logs.flush()
        print(exc.lines("make run: "), file=sys.stderr)
        return 2
    except OSError as exc:
        logs.flush()
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    return 0


def _say(text: str) -> None:
    logs.flush()
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
