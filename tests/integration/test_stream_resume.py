"""A stream cut by killing the server (SIGKILL) resumes after a restart with
no gap and no duplicate, over 1,000 events; the subscriber is the example
client other teams copy (clients/examples/watch_freezes.py)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from pathlib import Path

import grpc

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc
from tests.integration.freeze_helpers import ttl
from tests.server_process import ServerProcess
from tests.support import md

PAIRS = 500  # a freeze and its lift: 1,000 events
KILL_AFTER_PAIRS = 200


async def call_until_done(stub_call: object, request: object, who: str) -> object:
    """Retries through the restart; request_id makes a repeat harmless."""
    for _ in range(300):
        try:
            return await stub_call(request, metadata=md(who), timeout=5)  # type: ignore[operator]
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back")


async def produce(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        for i in range(PAIRS):
            if i == KILL_AFTER_PAIRS:
                server.kill()
                server.start()
            created = await call_until_done(
                stub.Freeze,
                gov.FreezeRequest(
                    type=freeze_pb2.FREEZE_TYPE_ERROR_FREEZE,
                    reason=f"f{i}",
                    ttl=ttl(60),
                    request_id=f"freeze-{i}",
                ),
                "carol",
            )
            assert isinstance(created, gov.FreezeResponse)
            await call_until_done(
                stub.Unfreeze,
                gov.UnfreezeRequest(
                    name=created.freeze.name, reason="lift", request_id=f"lift-{i}"
                ),
                "carol",
            )


async def test_cut_stream_resumes_without_gap_or_duplicate(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    server.start()
    watcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "clients/examples/watch_freezes.py",
        "--target",
        server.address,
        "--token",
        "dev-victor-token",
        "--count",
        str(2 * PAIRS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert watcher.stdout is not None
        first = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert first.startswith(b"subscribed at sequence 0"), first
        await asyncio.wait_for(produce(server), 240)
        out, err = await asyncio.wait_for(watcher.communicate(), 60)
    finally:
        if watcher.returncode is None:
            watcher.kill()
        server.stop()
    assert watcher.returncode == 0, err.decode()
    sequences = [int(m) for m in re.findall(rb"^seq=(\d+) ", out, re.MULTILINE)]
    with sqlite3.connect(tmp_path / "govex.db") as db:
        stored = [
            row[0]
            for row in db.execute(
                "select sequence from events where kind like 'FREEZE_%' order by sequence"
            )
        ]
    assert len(stored) == 2 * PAIRS
    assert sequences == stored
    assert server.starts == 2
    assert b"resuming after" in err
