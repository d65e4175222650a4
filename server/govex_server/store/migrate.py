"""Applies the Alembic migrations; the server runs this on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Brings the schema to the newest revision. On PostgreSQL an advisory
    lock makes replicas that start together migrate one after the other."""

    def upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7301946)"))
        command.upgrade(_config(connection), "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
