"""The ccxt adapter against the real ccxt OKX class, offline (a second
exchange with another API shape: JSON bodies, errors inside HTTP 200)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from govex_server.exchanges.ccxt_adapter import CcxtExchange
from govex_server.exchanges.errors import InsufficientFunds, OrderNotFound, RateLimited
from tests.fake_transport import FakeSession

INSTRUMENT = {
    "instType": "SPOT",
    "instId": "BTC-USDT",
    "uly": "",
    "baseCcy": "BTC",
    "quoteCcy": "USDT",
    "settleCcy": "",
    "ctValCcy": "",
    "optType": "",
    "stk": "",
    "listTime": "1606468572000",
    "expTime": "",
    "lever": "10",
    "tickSz": "0.1",
    "lotSz": "0.00000001",
    "minSz": "0.00001",
    "ctVal": "",
    "state": "live",
    "ctType": "",
    "maxLmtSz": "10000",
    "maxMktSz": "1000000",
}


class FakeOkx:
    def __init__(self) -> None:
        self.orders: dict[str, dict[str, str]] = {}
        self.next_reply: tuple[int, Any, dict[str, str]] | None = None

    def order_json(self, o: dict[str, str]) -> dict[str, str]:
        return {
            "instId": "BTC-USDT",
            "ordId": o["ordId"],
            "clOrdId": o["clOrdId"],
            "px": o["px"],
            "sz": o["sz"],
            "accFillSz": o["accFillSz"],
            "avgPx": o["px"],
            "state": o["state"],
            "side": o["side"],
            "ordType": "limit",
            "fee": "-0.05",
            "feeCcy": "USDT",
            "cTime": "1700000000000",
            "uTime": "1700000000000",
            "tdMode": "cash",
        }

    def __call__(
        self, method: str, path: str, params: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if self.next_reply is not None and path != "/api/v5/public/instruments":
            reply, self.next_reply = self.next_reply, None
            return reply
        ok = {"code": "0", "msg": ""}
        if path == "/api/v5/public/instruments":
            return 200, {**ok, "data": [INSTRUMENT]}, {}
        if path == "/api/v5/account/balance":
            details = [
                {
                    "ccy": "BTC",
                    "availBal": "1.5",
                    "cashBal": "2",
                    "eq": "2",
                    "frozenBal": "0.5",
                    "uTime": "1700000000000",
                }
            ]
            return 200, {**ok, "data": [{"details": details, "uTime": "1700000000000"}]}, {}
        if path in ("/api/v5/trade/order", "/api/v5/trade/batch-orders") and method == "POST":
            o = {
                "ordId": str(len(self.orders) + 1),
                "clOrdId": params["clOrdId"],
                "px": params["px"],
                "sz": params["sz"],
                "accFillSz": params["sz"],
                "state": "filled",
                "side": params["side"],
            }
            self.orders[o["clOrdId"]] = o
            data = [{"ordId": o["ordId"], "clOrdId": o["clOrdId"], "sCode": "0", "sMsg": ""}]
            return 200, {**ok, "data": data}, {}
        if path == "/api/v5/trade/order":
            found = self.orders.get(params.get("clOrdId", ""))
            if found is None:
                return 200, {"code": "51603", "msg": "Order does not exist", "data": []}, {}
            return 200, {**ok, "data": [self.order_json(found)]}, {}
        if path == "/api/v5/trade/cancel-order":
            found = self.orders[params["clOrdId"]]
            found["state"] = "canceled"
            data = [{"ordId": found["ordId"], "clOrdId": found["clOrdId"], "sCode": "0"}]
            return 200, {**ok, "data": data}, {}
        return 404, {"code": "1", "msg": f"not faked: {method} {path}"}, {}


@pytest.fixture
async def okx() -> Any:
    fake = FakeOkx()
    exchange = CcxtExchange(
        "okx-test",
        "okx",
        True,
        {"api_key": "k", "secret": "s", "password": "p"},
        session=FakeSession(fake),
    )
    yield exchange, fake
    await exchange.close()


async def test_okx_markets_balance_and_order_round_trip(okx: Any) -> None:
    exchange, _ = okx
    markets = await exchange.markets()
    assert (markets["BTC/USDT"].price_step, markets["BTC/USDT"].min_amount) == (
        Decimal("0.1"),
        Decimal("0.00001"),
    )
    balances = await exchange.balances()
    assert (balances["BTC"].free, balances["BTC"].total) == (Decimal("1.5"), Decimal("2"))
    created = await exchange.create_order(
        "gxOKX1", "BTC/USDT", "BUY", Decimal("0.01"), Decimal("50000")
    )
    assert created.client_id == "gxOKX1"
    fetched = await exchange.fetch_order("gxOKX1", "BTC/USDT")
    assert (fetched.status, fetched.filled) == ("closed", Decimal("0.01"))
    _, path, params = exchange._x.session.requests[-1]
    assert (path, params["clOrdId"]) == ("/api/v5/trade/order", "gxOKX1")
    await exchange.cancel_order("gxOKX1", "BTC/USDT")


async def test_okx_errors_are_mapped(okx: Any) -> None:
    exchange, fake = okx
    await exchange.markets()
    fake.next_reply = (
        200,
        {
            "code": "1",
            "msg": "Operation failed.",
            "data": [
                {
                    "ordId": "",
                    "clOrdId": "gxF",
                    "sCode": "51008",
                    "sMsg": "Order failed. Your available USDT balance is insufficient.",
                }
            ],
        },
        {},
    )
    with pytest.raises(InsufficientFunds):
        await exchange.create_order("gxF", "BTC/USDT", "BUY", Decimal("0.01"), Decimal("50000"))
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("gxMISSING", "BTC/USDT")
    fake.next_reply = (429, {"code": "50011", "msg": "Too Many Requests"}, {"Retry-After": "3"})
    with pytest.raises(RateLimited):
        await exchange.create_order("gxR", "BTC/USDT", "BUY", Decimal("0.01"), Decimal("50000"))
