"""PostgreSQL LISTEN/NOTIFY: wakes this replica when another one wrote.

Every transaction that appends an event also runs ``pg_notify('govex_events',
...)``, delivered at commit. Each replica keeps one dedicated asyncpg
connection listening on that channel and reports every notification as a
change of the stored state. While the connection is down the replica falls
back to polling (and turns its read caches off), and it reports a change on
reconnect so nothing missed in between stays unseen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("govex.listen")
CHANNEL = "govex_events"


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg accepts, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """Listens for other replicas' commits."""

    def __init__(
        self,
        url: str,
        on_change: Callable[[], None],
        on_connected: Callable[[bool], None],
        keepalive_seconds: float = 10.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_change = on_change
        self._on_connected = on_connected
        self._keepalive = keepalive_seconds
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """The task body; reconnects forever, cancelled at shutdown."""
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self._on_connected(True)
                self.connected.set()
                self._on_change()  # catch up on anything missed while away
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self._keepalive)
                    except TimeoutError:
                        await asyncio.wait_for(conn.execute("SELECT 1"), self._keepalive)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                self._on_connected(False)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(1.0)

    def _notified(self, *_args: object) -> None:
        self._on_change()
