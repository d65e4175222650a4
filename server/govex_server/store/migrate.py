"""Applies the Alembic migrations; the server runs this on start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from govex_server.store.database import Store

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7301946)"))
    command.upgrade(_config(connection), "head")


async def migrate(store: Store) -> None:
    """Brings the schema to the newest revision. On PostgreSQL an advisory
    lock makes replicas that start together migrate one after the other."""
    if store.engine is None:

        def on_thread() -> None:
            with store.sync_engine.connect() as conn, conn.begin():
                _upgrade(conn)

        await asyncio.get_running_loop().run_in_executor(None, on_thread)
        return
    async with store.engine.begin() as conn:
        await conn.run_sync(_upgrade)
