"""``govex``: the command line for operators (cli/main.py). Its tables and
live views need rich, the ``cli`` extra of govex-client."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``govex`` console script."""
    try:
        from govex_client.cli.main import main as run
    except ModuleNotFoundError as exc:
        if exc.name != "rich":
            raise
        hint = "pip install 'govex-client[cli]'"
        print(f"govex: the command line needs rich: {hint}", file=sys.stderr)
        return 2
    return run(argv)
