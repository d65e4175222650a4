"""``make bench``: govex unary throughput against a bare grpc.aio echo server,
both loaded by h2load in the same run; start-up time and idle and peak RSS;
then fan-out and execution (the runner on 1,000 orders, and a plan through
ExecutePlan over gRPC); then the event counter on PostgreSQL and two
replicas whose owner is killed every 5 s (issue 13).

Then ProposePlan before and after the server interceptor (issue 9: the
ratio to echo drops by no more than 5%).

Targets (issue 8): GetGovernanceState >= 0.9x echo; ProposePlan (a durable
write: plan, audit record and event) >= 0.5x echo; idle RSS <= 100 MiB;
start-up to SERVING <= 1 s (the median of 5 restarts). Printed, never
asserted: these machines are noisy. Every govex request is checked on the
server side (h2load counts gRPC errors in trailers as successes), and every
write counted is looked up in the database afterwards: plans, audit records
and events."""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from govex.governance.v1 import governance_service_pb2 as gov
from tests.bench import (
    event_sequence,
    execution_bench,
    execution_e2e,
    fanout,
    fault_bench,
    h2load,
    interceptor_cost,
    peer_fastapi,
    replica_bench,
    requests_with_ids,
)
from tests.postgres import free_port

BIN = Path(sys.executable).parent
REQUESTS = 10_000
WARMUP = 1_000
PEER_REQUESTS = 5_000
CLIENTS = 4
STREAMS = 16
RESTARTS = 5


@dataclass(frozen=True)
class Case:
    """One RPC to load."""

    title: str
    method: str
    message: bytes
    token: str
    target_ratio: float


def proposal(request_id: str = "") -> bytes:
    request = gov.ProposePlanRequest(reason="bench", request_id=request_id)
    for asset, weight in (("BTC", 50.0), ("ETH", 20.0), ("USDT", 30.0)):
        request.targets.add(asset=asset, weight_percent=weight)
    return request.SerializeToString()


CASES = [
    Case(
        "GetGovernanceState",
        "govex.governance.v1.GovernanceService/GetGovernanceState",
        gov.GetGovernanceStateRequest().SerializeToString(),
        "dev-victor-token",
        0.9,
    ),
    Case(
        "ProposePlan",
        "govex.governance.v1.GovernanceService/ProposePlan",
        proposal(),
        "dev-alice-token",
        0.5,
    ),
    # The same request_id on every request: after the first write, each one
    # is a replay of the stored first response (h2load cannot vary bodies;
    # unique request_ids are measured by requests_with_ids below).
    Case(
        "ProposePlan, one request_id (replays)",
        "govex.governance.v1.GovernanceService/ProposePlan",
        proposal("bench-replay-1"),
        "dev-alice-token",
        0.5,
    ),
]


# The client retries a refused connection every 10 ms: with gRPC's default
# reconnect back-off (1 s, growing) a server that binds its port a moment
# after the first attempt would look a second slower than it is.
PROBE_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 10),
]


def wait_healthy(
    address: str, process: subprocess.Popen[bytes], log: Path, started: float | None = None
) -> float:
    """Seconds from ``started`` (a time.monotonic() taken before the process
    was spawned; default now) until the server answers SERVING."""
    started = time.monotonic() if started is None else started
    deadline = started + 30
    with grpc.insecure_channel(address, options=PROBE_OPTIONS) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("govex-server exited:\n" + log.read_text())
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
            time.sleep(0.01)
    raise RuntimeError("govex-server did not start")


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of /proc/PID/status (VmHWM: peak, VmRSS: now), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid: int) -> float:
    return rss_mib(pid, "VmHWM")


def server_side_failures(log: Path) -> int:
    """Refusals and internal errors the server logged (one line each)."""
    count = 0
    for line in log.read_text().splitlines():
        try:
            message = json.loads(line)["message"]
        except (ValueError, KeyError):
            continue
        if " refused: " in message or "failed unexpectedly" in message:
            count += 1
    return count


def interceptor_only() -> int:
    """``--interceptor``: only the before/after comparison of ProposePlan."""
    tmp = Path(tempfile.mkdtemp(prefix="govex-bench-"))
    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.echo_server", str(echo_port)],
        stdout=subprocess.PIPE,
    )
    assert echo.stdout is not None
    echo.stdout.readline()
    try:
        return 0 if interceptor_cost.run(echo_port, tmp, proposal(), "dev-alice-token") else 1
    finally:
        echo.terminate()
        echo.wait(timeout=30)


def main() -> int:
    """Runs every case and prints one line per figure (``--fanout`` for the
    stream benchmark only)."""
    tmp = Path(tempfile.mkdtemp(prefix="govex-bench-"))
    echo_port, govex_port = free_port(), free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.echo_server", str(echo_port)],
        stdout=subprocess.PIPE,
    )
    assert echo.stdout is not None
    echo.stdout.readline()
    log = tmp / "govex.log"
    database = tmp / "govex.db"

    def start_govex() -> subprocess.Popen[bytes]:
        with open(log, "ab") as log_file:
            return subprocess.Popen(
                [
                    str(BIN / "govex-server"),
                    "serve",
                    "--listen",
                    f"127.0.0.1:{govex_port}",
                    "--database-url",
                    f"sqlite:///{database}",
                    "--principals-file",
                    "config/dev-principals.toml",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # 10,000 subscribers of one principal: the default limit (500
                # a principal) would refuse all but 500 of them.
                env={**os.environ, "GOVEX_MAX_STREAMS_PER_PRINCIPAL": str(2 * fanout.SUBSCRIBERS)},
            )

    # The first start creates the schema; the restart is what an operator
    # waits for in a rolling restart, and what the target is judged on.
    spawned = time.monotonic()
    server = start_govex()
    first_start = wait_healthy(f"127.0.0.1:{govex_port}", server, log, spawned)
    # Restarts, RESTARTS of them: one start-up is a single noisy sample on
    # these machines; the target is judged on their median (all printed).
    restarts: list[float] = []
    for _ in range(RESTARTS):
        server.terminate()
        server.wait(timeout=30)
        spawned = time.monotonic()
        server = start_govex()
        restarts.append(wait_healthy(f"127.0.0.1:{govex_port}", server, log, spawned))
    ok = True
    try:
        startup = statistics.median(restarts)
        time.sleep(1.0)
        idle = rss_mib(server.pid, "VmRSS")
        echo_idle = rss_mib(echo.pid, "VmRSS")
        met = startup <= 1.0 and idle <= 100
        ok = ok and met
        print(
            f"start-up to SERVING: first start (creates the schema) {first_start:.2f}s, "
            f"restart median {startup:.2f}s of {RESTARTS} "
            f"({', '.join(f'{r:.2f}' for r in restarts)}; target <= 1 s); idle RSS "
            f"{idle:.0f} MiB (echo {echo_idle:.0f} MiB, target <= 100 MiB): "
            f"{'met' if met else 'NOT met'}"
        )
        print(f"h2load: {REQUESTS} requests, {CLIENTS} connections x {STREAMS} streams")
        rates: dict[str, float] = {}
        for case in CASES:
            govex_url = f"http://127.0.0.1:{govex_port}/{case.method}"
            echo_url = f"http://127.0.0.1:{echo_port}/bench.Echo/Echo"
            h2load.run(govex_url, case.message, WARMUP, CLIENTS, STREAMS, case.token)
            h2load.run(echo_url, case.message, WARMUP, CLIENTS, STREAMS)
            baseline = h2load.run(echo_url, case.message, REQUESTS, CLIENTS, STREAMS)
            measured = h2load.run(govex_url, case.message, REQUESTS, CLIENTS, STREAMS, case.token)
            failures = server_side_failures(log) + measured.failed
            rates[case.title] = measured.requests_per_second
            ratio = measured.requests_per_second / baseline.requests_per_second
            met = ratio >= case.target_ratio and failures == 0
            ok = ok and met
            print(
                f"{case.title}: {measured.requests_per_second:,.0f} req/s; echo "
                f"{baseline.requests_per_second:,.0f} req/s; ratio {ratio:.2f} "
                f"(target >= {case.target_ratio}); server-side failures {failures}; "
                f"{'met' if met else 'NOT met'}"
            )
        peer, peer_rows = peer_fastapi.run(tmp, PEER_REQUESTS, 64, 1)
        peer_ratio = rates["ProposePlan"] / peer
        met = peer_ratio >= 5
        ok = ok and met
        print(
            f"ProposePlan vs the FastAPI + SQLAlchemy peer (same durable write, HTTP/1.1, "
            f"64 connections): govex {rates['ProposePlan']:,.0f} req/s, peer {peer:,.0f} req/s "
            f"({peer_rows} rows checked); {peer_ratio:.1f}x (target >= 5x): "
            f"{'met' if met else 'NOT met'}"
        )
        with_ids = requests_with_ids.run(f"127.0.0.1:{govex_port}")
        print(with_ids.summary)
        with sqlite3.connect(database) as db:
            plans = db.execute("select count(*) from plans").fetchone()[0]
            audits = db.execute(
                "select count(*) from audit_log where rpc = 'ProposePlan'"
            ).fetchone()[0]
            events = db.execute(
                "select count(*) from events where kind = 'PLAN_PROPOSED'"
            ).fetchone()[0]
        # Without request_id: warm-up + measured; one request_id: one write;
        # unique request_ids: one write each (both halves of that run).
        expected = WARMUP + REQUESTS + 1 + with_ids.writes
        print(
            f"ProposePlan durability: {plans} plans, {audits} audit records and {events} "
            f"events for {expected} writes"
        )
        ok = ok and plans == audits == events == expected
        print(f"govex-server peak RSS after the unary runs: {peak_rss_mib(server.pid):.1f} MiB")
        ok = fanout.run(f"127.0.0.1:{govex_port}", tmp, database) and ok
        print(f"govex-server peak RSS: {peak_rss_mib(server.pid):.1f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)
    try:
        ok = interceptor_cost.run(echo_port, tmp, proposal(), "dev-alice-token") and ok
    finally:
        echo.terminate()
        echo.wait(timeout=30)
    ok = execution_bench.main() and ok
    ok = execution_e2e.main() and ok
    ok = fault_bench.main() and ok
    ok = event_sequence.main() and ok
    ok = replica_bench.main() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(interceptor_only() if "--interceptor" in sys.argv else main())
