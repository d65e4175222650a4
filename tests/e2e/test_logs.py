"""The server's log tells the story: one JSON object per line (gRPC core's
own output included, i.e. silenced), every mutation once with rpc,
principal, request_id, resource and outcome as fields, refusals with the
principal who was refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc as gov_grpc
from tests.e2e.test_startup import _health_until_serving
from tests.server_process import ServerProcess
from tests.support import md


def _request(reason: str, request_id: str = "") -> gov.ProposePlanRequest:
    request = gov.ProposePlanRequest(reason=reason, request_id=request_id)
    request.targets.add(asset="BTC", weight_percent=60)
    request.targets.add(asset="USDT", weight_percent=40)
    return request


async def test_every_line_is_json_and_a_mutation_is_logged_once_with_its_fields(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path)
    server.start()
    try:
        await _health_until_serving(server.address)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = gov_grpc.GovernanceServiceStub(channel)
            first = await stub.ProposePlan(_request("logged", "log-1"), metadata=md("alice"))
            again = await stub.ProposePlan(_request("logged", "log-1"), metadata=md("alice"))
            assert again.plan.name == first.plan.name  # replayed, not a second plan
            try:
                await stub.ProposePlan(_request("not bob's to make"), metadata=md("bob"))
                raise AssertionError("bob may not propose")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() is grpc.StatusCode.PERMISSION_DENIED
    finally:
        server.stop()
    lines = server.log_path.read_text().splitlines()
    assert lines
    entries: list[dict[str, Any]] = []
    for line in lines:
        entry = json.loads(line)  # raises on any line that is not JSON
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        entries.append(entry)
    done = [e for e in entries if e.get("rpc") == "ProposePlan" and e.get("outcome") == "OK"]
    # The first call and its replay: each once, the same plan.
    assert len(done) == 2, done
    for entry in done:
        assert entry["principal"] == "alice"
        assert entry["request_id"] == "log-1"
        assert entry["resource"] == first.plan.name
    assert "replayed" not in done[0]
    assert done[1]["replayed"] == "true"
    refusals = [e for e in entries if e.get("outcome") == "PERMISSION_DENIED"]
    assert len(refusals) == 1, refusals
    assert refusals[0]["principal"] == "bob"
    assert refusals[0]["rpc"] == "ProposePlan"
    assert refusals[0]["reason"] == "ROLE_REQUIRED"
    # The serving process settled its garbage collector once it was up: what
    # start-up built (some 100,000 objects) is frozen.
    [settled] = [e for e in entries if e["message"].startswith("garbage collector settled")]
    assert settled["young_threshold"] == 10_000
    assert settled["frozen"] > 10_000, settled
