"""ProposePlan before and after the server interceptor (identity,
idempotency, request checks and audit chain in one place): the server of
the last commit without it, taken from git, against today's, each on a fresh
SQLite file, alternating with the echo baseline in the same run.

Target: the ratio to echo drops by no more than 5%. Every write is counted
in each server's database afterwards."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.bench import h2load
from tests.postgres import free_port

BIN = Path(sys.executable).parent
# The last commit of main before the interceptor, the Recorder and the chain.
BEFORE = "4c44be2"
ROUNDS = 5
REQUESTS = 5_000
WARMUP = 500
CLIENTS, STREAMS = 4, 16
METHOD = "govex.governance.v1.GovernanceService/ProposePlan"


@dataclass
class Server:
    """One server build, its database and its ratios to echo."""

    title: str
    python_path: str
    principals: str
    tmp: Path
    ratios: list[float]
    rates: list[float]

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        from tests.bench.run_all import wait_healthy

        port = free_port()
        env = {**os.environ}
        if self.python_path:
            env["PYTHONPATH"] = self.python_path
        log = self.tmp / f"{self.title}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "govex_server",
                    "serve",
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--database-url",
                    f"sqlite:///{self.tmp}/{self.title}.db",
                    "--principals-file",
                    self.principals,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env, "GOVEX_PAPER_BOOK_FILE": str(self.tmp / f"{self.title}-book.db")},
            )
        wait_healthy(f"127.0.0.1:{port}", process, log)
        return process, port

    def plans(self) -> int:
        with sqlite3.connect(self.tmp / f"{self.title}.db") as db:
            return int(db.execute("select count(*) from plans").fetchone()[0])


def _checkout(tmp: Path) -> Path | None:
    """The tree of BEFORE (server, generated, config), or None without git."""
    target = tmp / "before"
    target.mkdir()
    try:
        archive = subprocess.run(
            ["git", "archive", BEFORE, "server", "generated", "config"],
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"interceptor cost: NOT measured: cannot read commit {BEFORE} from git ({exc})")
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    # Its generated code had no __init__.py: as namespace packages they would
    # lose to today's regular ones (the installed client) whatever the path.
    for directory in (target / "generated" / "govex").rglob("*"):
        if directory.is_dir():
            (directory / "__init__.py").touch()
    (target / "generated" / "govex" / "__init__.py").touch()
    return target


def _imports_from(python_path: str) -> str:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import govex_server, govex.governance.v1.plan_pb2 as p;"
            "print(govex_server.__file__ if p.__file__.startswith(govex_server.__file__"
            ".rsplit('/server/', 1)[0]) else 'shadowed')",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": python_path},
        check=True,
    )
    return probe.stdout.strip()


def run(echo_port: int, tmp: Path, message: bytes, token: str) -> bool:
    """Prints the figures; True when the target is met."""
    before_tree = _checkout(tmp)
    if before_tree is None:
        return False
    before_path = f"{before_tree}/server:{before_tree}/generated"
    if not _imports_from(before_path).startswith(str(before_tree)):
        print("interceptor cost: NOT measured: the old tree does not shadow the installed one")
        return False
    servers = [
        Server("before", before_path, f"{before_tree}/config/dev-principals.toml", tmp, [], []),
        Server("after", "", "config/dev-principals.toml", tmp, [], []),
    ]
    echo_url = f"http://127.0.0.1:{echo_port}/bench.Echo/Echo"
    echo_rates: list[float] = []
    for _ in range(ROUNDS):
        for server in servers:
            process, port = server.start()
            try:
                url = f"http://127.0.0.1:{port}/{METHOD}"
                h2load.run(url, message, WARMUP, CLIENTS, STREAMS, token)
                echo = h2load.run(echo_url, message, REQUESTS, CLIENTS, STREAMS)
                measured = h2load.run(url, message, REQUESTS, CLIENTS, STREAMS, token)
            finally:
                process.terminate()
                process.wait(timeout=30)
            echo_rates.append(echo.requests_per_second)
            server.rates.append(measured.requests_per_second)
            server.ratios.append(measured.requests_per_second / echo.requests_per_second)
    expected = ROUNDS * (WARMUP + REQUESTS)
    counted = {s.title: s.plans() for s in servers}
    # Both against the median of every echo run: the echo server is the same
    # for both, and one echo run beside each server only adds its own noise.
    echo_median = statistics.median(echo_rates)
    before, after = (statistics.median(s.rates) / echo_median for s in servers)
    change = after / before - 1
    met = change >= -0.05 and all(n == expected for n in counted.values())
    print(
        f"echo: median {echo_median:,.0f} req/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in echo_rates)})"
    )
    for s in servers:
        print(
            f"ProposePlan {s.title} the interceptor: median {statistics.median(s.rates):,.0f} "
            f"req/s (rounds: {', '.join(f'{r:,.0f}' for r in s.rates)}; ratio to the echo "
            f"beside it: {', '.join(f'{r:.3f}' for r in s.ratios)}); "
            f"{counted[s.title]} plans stored for {expected} requests"
        )
    print(
        f"interceptor cost: ratio to echo {before:.3f} -> {after:.3f} ({change:+.1%}; "
        f"target: no drop beyond -5%): {'met' if met else 'NOT met'}"
    )
    return met
