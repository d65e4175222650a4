"""Applies the Alembic migrations; the server runs this on start.

A server starting on a database that is already at the newest revision
skips Alembic altogether (importing it and reading its scripts cost about a
tenth of the start-up): one query compares ``alembic_version`` with HEAD,
which a test keeps equal to the newest script's revision."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from govex_server.store.database import Store

_SCRIPTS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions (tests/unit checks it).
HEAD = "0011"


def _config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def script_head() -> str:
    """The head revision as Alembic reads it from the scripts."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _at_head(connection: Connection) -> bool:
    try:
        with connection.begin_nested():
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        return False  # a new database: no version table yet
    return row is not None and row[0] == HEAD


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7301946)"))
    if _at_head(connection):
        return
    from alembic import command

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


async def at_head(store: Store) -> bool:
    """True when the schema is at the newest revision (nothing is changed)."""
    return await store.read(lambda uow: _at_head(uow.conn))
