"""Helpers shared by the tests: tokens, metadata, store snapshots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from govex_server.store import tables
from govex_server.store.database import Store, UnitOfWork

# The development principals (config/dev-principals.toml): dev-<name>-token.
PRINCIPALS_FILE = "config/dev-principals.toml"


def token(name: str) -> str:
    """The development token of ``name``."""
    return f"dev-{name}-token"


def md(name: str) -> tuple[tuple[str, str], ...]:
    """Call metadata authenticating as ``name``."""
    return (("authorization", f"Bearer {token(name)}"),)


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: two equal snapshots mean nothing was written."""

    def unit(uow: UnitOfWork) -> dict[str, list[tuple[Any, ...]]]:
        result: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables.metadata.sorted_tables:
            rows = uow.conn.execute(select(table))
            result[table.name] = sorted((tuple(r) for r in rows.all()), key=repr)
        return result

    return await store.read(unit)
