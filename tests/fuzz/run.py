"""`make fuzz`: 100,000 fuzzed calls over every RPC against the installed
server (a child process on a fresh SQLite file), with the status histogram.
Fails (exit 1) on any INTERNAL or UNKNOWN, on a traceback in the server's
log, or if the server died."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fuzz.driver import fuzz
from tests.server_process import ServerProcess


async def _serving(address: str, within: float = 60) -> bool:
    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
    return False


def _read_logs(tmp: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(tmp.glob("server-*.log")))


def _show(done: int, histogram: Counter[str], started: float) -> None:
    rate = done / (time.monotonic() - started)
    top = ", ".join(f"{k} {v}" for k, v in histogram.most_common())
    print(f"  {done:>7} calls, {rate:,.0f}/s: {top}", flush=True)


async def main(calls: int, seed: int, concurrency: int) -> int:
    with tempfile.TemporaryDirectory(prefix="govex-fuzz-") as tmp:
        server = ServerProcess(Path(tmp))
        server.start()
        try:
            if not await _serving(server.address):
                print("the server did not start", file=sys.stderr)
                return 1
            print(f"fuzzing {server.address}: {calls:,} calls, seed {seed}", flush=True)
            started = time.monotonic()
            result = await fuzz(
                server.address,
                calls,
                seed,
                concurrency,
                lambda n, h: _show(n, h, started),
            )
            elapsed = time.monotonic() - started
            alive = server.process is not None and server.process.poll() is None
            alive = alive and await _serving(server.address, 10)
        finally:
            server.stop()
        log = _read_logs(Path(tmp))
    print(f"\n{calls:,} calls in {elapsed:.0f} s ({calls / elapsed:,.0f}/s); statuses:")
    for status, count in result.histogram.most_common():
        print(f"  {status:<20} {count:>7}")
    print(f"methods called: {len(result.per_method)}")
    tracebacks = log.count("Traceback")
    failures = []
    for status in ("INTERNAL", "UNKNOWN"):
        if result.histogram[status]:
            failures.append(f"{result.histogram[status]} {status}: {Counter(result.bad[status])}")
    if tracebacks:
        failures.append(f"{tracebacks} tracebacks in the server log")
    if not alive:
        failures.append("the server is no longer serving")
    if elapsed > 600:
        failures.append(f"took {elapsed:.0f} s, target 600 s")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("target 0 INTERNAL, 0 UNKNOWN:", "met" if not failures else "NOT met")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.calls, args.seed, args.concurrency)))
