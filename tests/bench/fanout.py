"""Fan-out benchmark (issue 3): 1,000 WatchFreezeEvents subscribers in
separate client processes, one freeze event per second for 30 seconds:
delivered/expected and p50/p99 delivery latency; then 3,000 subscriptions
opened at once: how many were refused. Targets: 100% delivered, p99 under
100 ms, 0 refused. Printed, never asserted."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2

from govex.governance.v1 import freeze_pb2, governance_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2 as gov

SUBSCRIBERS = 1000
PROCESSES = 10
EVENTS = 30
BURST = 3000
BURST_PROCESSES = 3


def _clients(
    target: str, tmp: Path, total: int, processes: int, seconds: float, tag: str
) -> list[tuple[subprocess.Popen[str], Path]]:
    started = []
    for i in range(processes):
        out = tmp / f"{tag}-{i}.json"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bench.fanout_client",
                "--target",
                target,
                "--streams",
                str(total // processes),
                "--seconds",
                str(seconds),
                "--out",
                str(out),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append((process, out))
    return started


def _collect(started: list[tuple[subprocess.Popen[str], Path]]) -> list[dict[str, Any]]:
    results = []
    for process, out in started:
        process.wait(timeout=300)
        results.append(json.loads(out.read_text()))
    return results


def run(target: str, tmp: Path) -> bool:
    """Both phases; True when every target was met."""
    started = _clients(target, tmp, SUBSCRIBERS, PROCESSES, EVENTS + 25, "fanout")
    ready = 0
    for process, _ in started:
        assert process.stdout is not None
        ready += process.stdout.readline().strip() == "ready"
    print(f"fan-out: {ready}/{PROCESSES} client processes subscribed; sending {EVENTS} events")
    with grpc.insecure_channel(target) as channel:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        begin = time.monotonic()
        for i in range(EVENTS):
            stub.Freeze(
                gov.FreezeRequest(
                    type=freeze_pb2.FREEZE_TYPE_ERROR_FREEZE,
                    reason=f"bench {i}",
                    ttl=duration_pb2.Duration(seconds=3600),
                ),
                metadata=(("authorization", "Bearer dev-carol-token"),),
            )
            time.sleep(max(0.0, begin + i + 1 - time.monotonic()))
    results = _collect(started)
    delivered = sum(int(r["counts"]["events"]) for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    expected = SUBSCRIBERS * EVENTS
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    print(
        f"fan-out: delivered {delivered}/{expected} ({delivered / expected:.1%}; target 100%); "
        f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 100 ms)"
    )
    burst = _collect(_clients(target, tmp, BURST, BURST_PROCESSES, 20, "burst"))
    opened = sum(int(r["counts"]["opened"]) for r in burst)
    refused = sum(int(r["counts"]["refused"]) for r in burst)
    print(f"burst: {BURST} subscriptions at once: {opened} opened, {refused} refused (target 0)")
    return delivered == expected and p99 < 100 and refused == 0 and opened == BURST
