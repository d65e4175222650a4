"""One server per SQLite file.

Two servers on one SQLite file would both resume its executions and send
their orders twice (SQLite has no row leases to share them, PostgreSQL
replicas do, see the engine). The first server holds an exclusive lock on
``<database>.lock``; a second one exits at once, before it migrates,
reconciles or touches an exchange. The operating system releases the lock
when the holder dies, even by SIGKILL, so a crash never leaves it stale."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class DatabaseInUse(OSError):
    """Another server holds the database's lock."""


class DatabaseLock:
    """The held lock; ``release`` on shutdown."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Gives the file up (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_database(database_url: str) -> DatabaseLock | None:
    """The lock of a SQLite file database; None for PostgreSQL (replicas
    share it) and for an in-memory SQLite database. DatabaseInUse, with the
    holder's pid, when another server has it."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    path = Path(f"{url.database}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseInUse(
            f"another govex server (pid {holder}) is using {url.database}; "
            "one server per SQLite file (use PostgreSQL for replicas)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return DatabaseLock(path, fd)
