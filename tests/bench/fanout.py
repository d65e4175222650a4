"""Fan-out benchmark: 10,000 WatchFreezeEvents subscribers in 10 client
processes, first against a bare grpc.aio fan-out server (fanout_server.py),
then against govex, in the same run; 10 freeze events at one a second.
For each: subscriptions opened, events delivered, p50/p99 delivery latency,
and every subscription's final status. Targets (issue 8): 100% opened,
100% delivered, govex's p99 <= 1.2x the baseline's. Printed, never
asserted; govex's events are counted in its database afterwards."""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc
from tests.postgres import free_port

SUBSCRIBERS = 10_000
PROCESSES = 10
EVENTS = 10
OPEN_SECONDS = 120


@dataclass(frozen=True)
class Phase:
    """What one server did with the subscribers."""

    opened: int
    delivered: int
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]


def _clients(target: str, tmp: Path, tag: str) -> list[tuple[subprocess.Popen[str], Path]]:
    started = []
    for i in range(PROCESSES):
        out = tmp / f"{tag}-{i}.json"
        started.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.bench.fanout_client",
                        "--target",
                        target,
                        "--streams",
                        str(SUBSCRIBERS // PROCESSES),
                        "--seconds",
                        str(OPEN_SECONDS + EVENTS + 30),
                        "--events",
                        str(EVENTS),
                        "--out",
                        str(out),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                ),
                out,
            )
        )
    return started


def _phase(target: str, tmp: Path, tag: str) -> Phase:
    started = _clients(target, tmp, tag)
    ready = 0
    for process, _ in started:
        assert process.stdout is not None
        ready += process.stdout.readline().strip() == "ready"
    with grpc.insecure_channel(target) as channel:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        begin = time.monotonic()
        for i in range(EVENTS):
            stub.Freeze(
                gov.FreezeRequest(
                    type=freeze_pb2.FREEZE_TYPE_ERROR_FREEZE,
                    reason=f"bench {tag} {i}",
                    ttl=duration_pb2.Duration(seconds=3600),
                ),
                metadata=(("authorization", "Bearer dev-carol-token"),),
            )
            time.sleep(max(0.0, begin + i + 1 - time.monotonic()))
    results: list[dict[str, Any]] = []
    for process, out in started:
        process.wait(timeout=OPEN_SECONDS + EVENTS + 60)
        results.append(json.loads(out.read_text()))
    latencies = sorted(x for r in results for x in r["latencies"])
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r["statuses"])
    return Phase(
        opened=sum(int(r["counts"]["opened"]) for r in results),
        delivered=sum(int(r["counts"]["events"]) for r in results),
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan"),
        statuses=dict(statuses),
    )


def _print(name: str, phase: Phase) -> None:
    expected = SUBSCRIBERS * EVENTS
    print(
        f"fan-out {name}: {phase.opened}/{SUBSCRIBERS} opened, {phase.delivered}/{expected} "
        f"delivered ({phase.delivered / expected:.1%}), latency p50 {phase.p50_ms:.1f} ms, "
        f"p99 {phase.p99_ms:.1f} ms; final statuses {phase.statuses}"
    )


def run(govex_target: str, tmp: Path, database: Path) -> bool:
    """Baseline, then govex; True when every target was met."""
    port = free_port()
    baseline = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.fanout_server", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert baseline.stdout is not None
        baseline.stdout.readline()
        bare = _phase(f"127.0.0.1:{port}", tmp, "bare")
    finally:
        baseline.terminate()
        baseline.wait(timeout=30)
    _print("bare grpc.aio", bare)
    with sqlite3.connect(database) as db:
        before = db.execute("select count(*) from events where kind = 'FREEZE_CREATED'").fetchone()
    ours = _phase(govex_target, tmp, "govex")
    _print("govex", ours)
    with sqlite3.connect(database) as db:
        after = db.execute("select count(*) from events where kind = 'FREEZE_CREATED'").fetchone()
    stored = after[0] - before[0]
    ratio = ours.p99_ms / bare.p99_ms
    met = (
        ours.opened == SUBSCRIBERS
        and ours.delivered == SUBSCRIBERS * EVENTS
        and stored == EVENTS
        and ratio <= 1.2
    )
    print(
        f"fan-out: govex p99 {ratio:.2f}x the baseline's (target <= 1.2x); {stored} freeze "
        f"events stored for {EVENTS} sent: {'met' if met else 'NOT met'}"
    )
    return met
