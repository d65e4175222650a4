"""`kill -HUP` makes the running server re-read its principals file, and
the reload is in the audit log (verify-audit still passes)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc
from tests.integration.test_front_door import _principal, append, copy_principals
from tests.server_process import ServerProcess

BIN = Path(sys.executable).parent


def _answers(address: str, token: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        try:
            stub.GetGovernanceState(
                gov.GetGovernanceStateRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=2,
            )
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def _until(condition: Callable[[], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_sighup_reloads_the_principals(tmp_path: Path) -> None:
    principals = copy_principals(tmp_path)
    server = ServerProcess(
        tmp_path,
        {"GOVEX_PAPER_BOOK_FILE": str(tmp_path / "book.db")},
        principals_file=str(principals),
    )
    server.start()
    try:
        _until(lambda: _answers(server.address, "dev-victor-token") == grpc.StatusCode.OK)
        assert _answers(server.address, "yuri-token") == grpc.StatusCode.UNAUTHENTICATED
        append(principals, _principal("yuri", '"viewer"', "yuri-token"))
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        _until(lambda: _answers(server.address, "yuri-token") == grpc.StatusCode.OK)
        # The line is written by the log's own thread, a moment after the
        # reload took effect: waited for, not read at once.
        log = tmp_path / "server-1.log"
        _until(lambda: "principals reloaded (SIGHUP)" in log.read_text())
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0
    verified = subprocess.run(
        [str(BIN / "govex-server"), "verify-audit", "--database-url", server.database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout
    assert "audit chain intact: 1 records" in verified.stdout


def test_signals_during_start_up_neither_kill_nor_get_lost(tmp_path: Path) -> None:
    """A SIGHUP while the server is still reconciling (its port answers
    NOT_SERVING) is applied once it is up, not the default "terminate"."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    principals = copy_principals(tmp_path)
    (tmp_path / "paper.toml").write_text(
        "latency_ms = 3000\n[balances]\nUSDT = 1000\n[prices]\nBTC = 50000\n"
    )
    server = ServerProcess(
        tmp_path,
        {
            "GOVEX_PAPER_EXCHANGE_FILE": str(tmp_path / "paper.toml"),
            "GOVEX_PAPER_BOOK_FILE": str(tmp_path / "book.db"),
        },
        principals_file=str(principals),
    )
    server.start()

    def health() -> str:
        with grpc.insecure_channel(server.address) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.RpcError as error:
                return str(error.code().name)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    try:
        _until(lambda: health() in ("NOT_SERVING", "SERVING"))
        append(principals, _principal("yuri", '"viewer"', "yuri-token"))
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        _until(lambda: _answers(server.address, "yuri-token") == grpc.StatusCode.OK)
        assert server.process.poll() is None
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0
