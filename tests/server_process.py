"""The installed ``govex-server`` as a child process on a SQLite file, for
tests that kill it (SIGKILL) and start it again on the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.postgres import free_port
from tests.support import PRINCIPALS_FILE

BIN = Path(sys.executable).parent


class ServerProcess:
    """One server whose state (database, paper book) lives in ``tmp``."""

    def __init__(
        self,
        tmp: Path,
        env: dict[str, str] | None = None,
        principals_file: str = PRINCIPALS_FILE,
        database_url: str | None = None,
        name: str = "server",
    ) -> None:
        self.tmp = tmp
        self.name = name
        self.principals_file = principals_file
        # A replica on a shared PostgreSQL database, or its own SQLite file.
        self.database_url = database_url or f"sqlite:///{tmp}/govex.db"
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Starts (again) on the same database; logs go to NAME-N.log."""
        self.starts += 1
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "govex-server"),
                    "serve",
                    "--listen",
                    self.address,
                    "--database-url",
                    self.database_url,
                    "--principals-file",
                    self.principals_file,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.tmp / f"{self.name}-{self.starts}.log"

    def logs(self) -> str:
        """Every start's log, in order."""
        return "".join(
            (self.tmp / f"{self.name}-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, exactly like a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the process stands still (a long GC pause, a frozen VM)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM if still running."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
