"""Start-up in the right order (issue 12 item 11): the port is bound and
says NOT_SERVING while open orders are reconciled, then SERVING; a second
server on the same SQLite file exits at once with one clear line, having
touched nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.server_process import ServerProcess

SLOW_BOOK = "latency_ms = 2000\n[balances]\nUSDT = 1000\n[prices]\nBTC = 50000\n"


def _server(tmp: Path) -> ServerProcess:
    (tmp / "paper.toml").write_text(SLOW_BOOK)
    return ServerProcess(
        tmp,
        {
            "GOVEX_PAPER_EXCHANGE_FILE": str(tmp / "paper.toml"),
            "GOVEX_PAPER_BOOK_FILE": str(tmp / "book.db"),
        },
    )


async def _health_until_serving(address: str, within: float = 60) -> list[str]:
    """Every distinct health answer, in order, until SERVING."""
    seen: list[str] = []
    deadline = asyncio.get_running_loop().time() + within
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "SERVING":
                return seen
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never SERVING: {seen}")
            await asyncio.sleep(0.05)


async def test_the_port_says_not_serving_while_reconciling(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.start()
    try:
        # Reconciliation lists the account's orders, which takes 2 s here:
        # the port answers meanwhile, and says it is not ready.
        seen = await _health_until_serving(server.address)
        assert "NOT_SERVING" in seen, seen
        assert seen.index("NOT_SERVING") < seen.index("SERVING")
    finally:
        server.stop()


async def test_a_second_server_on_the_same_sqlite_file_exits_at_once(tmp_path: Path) -> None:
    first = _server(tmp_path)
    first.start()
    second = ServerProcess(tmp_path, first.env)  # same database, another port
    try:
        await _health_until_serving(first.address)
        second.starts = 10  # its own log file
        second.start()
        assert second.process is not None
        code = await asyncio.to_thread(second.process.wait, 30)
        assert code == 1
        lines = (tmp_path / "server-11.log").read_text().strip().splitlines()
        assert len(lines) == 1, lines
        assert "another govex server (pid" in lines[0] and "govex.db" in lines[0], lines
        # One line, nothing else: it neither migrated nor reconciled.
        assert await _health_until_serving(first.address, within=5) == ["SERVING"]
    finally:
        second.stop()
        first.stop()
