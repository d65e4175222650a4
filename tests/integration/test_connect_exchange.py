"""ConnectExchange: ccxt accounts configured at run time, credentials
encrypted at rest and never returned; the live-trading switch."""

from __future__ import annotations

from datetime import UTC

import grpc
from cryptography.fernet import Fernet
from sqlalchemy import select

from govex.execution.v1 import exchange_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex_server.store import tables as t
from tests.conftest import HarnessFactory
from tests.integration.helpers import refused
from tests.support import md, snapshot

SECRET = "s3cr3t-never-shown"


def request(**changes: object) -> exe.ConnectExchangeRequest:
    base: dict[str, object] = {
        "name": "exchanges/binance-test",
        "kind": exchange_pb2.EXCHANGE_KIND_CCXT,
        "ccxt_id": "binance",
        "sandbox": True,
        "credentials": exchange_pb2.ExchangeCredentials(api_key="key", secret=SECRET),
        "max_orders_per_window": 20,
    }
    base.update(changes)
    return exe.ConnectExchangeRequest(**base)  # type: ignore[arg-type]


async def test_connect_lists_and_survives_a_restart(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(credentials_key=Fernet.generate_key().decode())
    response = await h.exe.ConnectExchange(request(), metadata=md("carol"))
    assert response.exchange.name == "exchanges/binance-test"
    assert response.exchange.kind == exchange_pb2.EXCHANGE_KIND_CCXT
    assert response.exchange.has_credentials
    assert response.exchange.rate_budget.max_orders == 20
    assert response.exchange.update_time.ToDatetime(tzinfo=UTC) == h.clock.now()
    assert SECRET not in str(response)
    listed = await h.exe.ListExchanges(exe.ListExchangesRequest(), metadata=md("victor"))
    # Sorted by name (the order pages follow).
    assert [e.name for e in listed.exchanges] == ["exchanges/binance-test", "exchanges/paper"]
    assert SECRET not in str(listed)
    stored = await h.store.read(
        lambda uow: uow.conn.execute(select(t.exchange_accounts.c.credentials)).scalar_one()
    )
    assert SECRET.encode() not in bytes(stored)  # encrypted at rest
    await h.restart()
    again = await h.exe.ListExchanges(exe.ListExchangesRequest(), metadata=md("victor"))
    assert "exchanges/binance-test" in [e.name for e in again.exchanges]
    reloaded = next(e for e in again.exchanges if e.name == "exchanges/binance-test")
    assert reloaded.update_time == response.exchange.update_time  # as stored


async def test_bad_connect_requests(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(credentials_key=Fernet.generate_key().decode())
    await h.settle()
    before = await snapshot(h.store)
    cases = [
        (request(ccxt_id="no-such"), "carol", grpc.StatusCode.INVALID_ARGUMENT, "ccxt_id"),
        (
            request(credentials=exchange_pb2.ExchangeCredentials(api_key="k")),
            "carol",
            grpc.StatusCode.INVALID_ARGUMENT,
            "credentials",
        ),
        (request(sandbox=False), "carol", grpc.StatusCode.FAILED_PRECONDITION, ""),
        (request(kind=0), "carol", grpc.StatusCode.INVALID_ARGUMENT, "kind"),
        (request(name="binance"), "carol", grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (request(), "victor", grpc.StatusCode.PERMISSION_DENIED, ""),
    ]
    for message, who, code, field in cases:
        error = await refused(h.exe.ConnectExchange(message, metadata=md(who)))
        assert error.code == code, (message, error)
        if field:
            assert field in error.fields
    live = await refused(h.exe.ConnectExchange(request(sandbox=False), metadata=md("carol")))
    assert live.reason == "LIVE_TRADING_DISABLED"
    assert await snapshot(h.store) == before


async def test_credentials_need_a_key(harness_factory: HarnessFactory) -> None:
    h = await harness_factory()
    error = await refused(h.exe.ConnectExchange(request(), metadata=md("carol")))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_CREDENTIALS_KEY")
