"""The ccxt adapter against the real ccxt Binance class, offline: markets,
balance, tickers, create with our client order id, fetch, cancel, and each
error class mapped to ours."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from govex_server.exchanges.ccxt_adapter import CcxtExchange
from govex_server.exchanges.errors import (
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from tests.fake_transport import FakeSession

EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1,
    "rateLimits": [],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01",
                    "maxPrice": "1000000",
                    "tickSize": "0.01",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001",
                    "maxQty": "9000",
                    "stepSize": "0.00001",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000",
                    "applyMaxToMarket": False,
                },
            ],
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
        }
    ],
}


class FakeBinance:
    """Enough of Binance's spot REST API, with orders kept by client id."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.next_error: tuple[int, Any, dict[str, str]] | None = None
        self.raise_next: BaseException | None = None

    def order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "symbol": "BTCUSDT",
            "orderId": o["orderId"],
            "clientOrderId": o["clientOrderId"],
            "transactTime": 1_700_000_000_000,
            "time": 1_700_000_000_000,
            "updateTime": 1_700_000_000_000,
            "price": o["price"],
            "origQty": o["origQty"],
            "executedQty": o["executedQty"],
            "cummulativeQuoteQty": o["quoteQty"],
            "status": o["status"],
            "timeInForce": "GTC",
            "type": "LIMIT",
            "side": o["side"],
        }

    def __call__(
        self, method: str, path: str, params: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if self.raise_next is not None:
            error, self.raise_next = self.raise_next, None
            raise error
        if self.next_error is not None and path != "/api/v3/exchangeInfo":
            reply, self.next_error = self.next_error, None
            return reply
        if path == "/api/v3/exchangeInfo":
            return 200, EXCHANGE_INFO, {}
        if path == "/api/v3/account":
            return (
                200,
                {
                    "balances": [
                        {"asset": "BTC", "free": "1.5", "locked": "0.5"},
                        {"asset": "USDT", "free": "1000", "locked": "0"},
                        # More digits than a binary float holds.
                        {"asset": "ETH", "free": "1.123456789012345678", "locked": "0"},
                    ]
                },
                {},
            )
        if path == "/api/v3/ticker/24hr":
            return (
                200,
                [
                    {
                        "symbol": "BTCUSDT",
                        "lastPrice": "50000.5",
                        "bidPrice": "50000",
                        "askPrice": "50001",
                        "closeTime": 1_700_000_000_000,
                    }
                ],
                {},
            )
        if path == "/api/v3/openOrders":
            live = ("NEW", "PARTIALLY_FILLED")
            return (
                200,
                [self.order_json(o) for o in self.orders.values() if o["status"] in live],
                {},
            )
        if path == "/api/v3/order" and method == "POST":
            cid = params["newClientOrderId"]
            if cid in self.orders:
                return 400, {"code": -2010, "msg": "Duplicate order sent."}, {}
            o = {
                "orderId": len(self.orders) + 1,
                "clientOrderId": cid,
                "side": params["side"],
                "price": params["price"],
                "origQty": params["quantity"],
                "executedQty": params["quantity"],
                "quoteQty": str(Decimal(params["quantity"]) * Decimal(params["price"])),
                "status": "FILLED",
            }
            self.orders[cid] = o
            return 200, self.order_json(o), {}
        if path == "/api/v3/order":
            found = self.orders.get(params.get("origClientOrderId", ""))
            if found is None:
                return 400, {"code": -2013, "msg": "Order does not exist."}, {}
            if method == "DELETE":
                found["status"] = "CANCELED"
            return 200, self.order_json(found), {}
        return 404, {"code": -1, "msg": f"not faked: {method} {path}"}, {}


@pytest.fixture
async def binance() -> Any:
    fake = FakeBinance()
    exchange = CcxtExchange(
        "binance-test",
        "binance",
        True,
        {"api_key": "key", "secret": "secret"},
        session=FakeSession(fake),
    )
    yield exchange, fake
    await exchange.close()


async def test_markets_balances_and_prices(binance: Any) -> None:
    exchange, _ = binance
    markets = await exchange.markets()
    btc = markets["BTC/USDT"]
    # Parsed from the exchange's own text, exactly (ccxt's number type is str).
    assert (btc.amount_step, btc.price_step, btc.min_notional, btc.min_amount) == (
        Decimal("0.00001"),
        Decimal("0.01"),
        Decimal("5"),
        Decimal("0.00001"),
    )
    balances = await exchange.balances()
    assert (balances["BTC"].free, balances["BTC"].total) == (Decimal("1.5"), Decimal("2.0"))
    assert str(balances["ETH"].total) == "1.123456789012345678"
    assert (await exchange.prices(["BTC"])) == {"BTC": Decimal("50000.5")}


async def test_create_fetch_cancel_by_client_order_id(binance: Any) -> None:
    exchange, fake = binance
    await exchange.markets()
    order = await exchange.create_order(
        "gxABC", "BTC/USDT", "BUY", Decimal("0.30001"), Decimal("49999.99")
    )
    assert (order.client_id, order.status) == ("gxABC", "closed")
    assert (order.filled, order.price) == (Decimal("0.30001"), Decimal("49999.99"))
    method, path, params = exchange._x.session.requests[-1]
    assert (method, path, params["newClientOrderId"]) == ("POST", "/api/v3/order", "gxABC")
    # The request body carries our decimal strings, not binary fractions.
    assert (params["quantity"], params["price"]) == ("0.30001", "49999.99")
    assert "signature" in params  # ccxt signed it
    assert (await exchange.fetch_order("gxABC", "BTC/USDT")).exchange_id == "1"
    fake.orders["gxABC"]["status"] = "NEW"
    assert (await exchange.cancel_order("gxABC", "BTC/USDT")).status == "canceled"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            (
                400,
                {"code": -2010, "msg": "Account has insufficient balance for requested action."},
                {},
            ),
            InsufficientFunds,
        ),
        ((400, {"code": -2010, "msg": "Duplicate order sent."}, {}), OrderRejected),
        ((429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"}), RateLimited),
        ((503, "Service Unavailable", {"Content-Type": "text/plain"}), OutcomeUnknown),
    ],
)
async def test_create_errors_are_mapped(binance: Any, reply: Any, error: type) -> None:
    exchange, fake = binance
    await exchange.markets()
    fake.next_error = reply
    with pytest.raises(error) as caught:
        await exchange.create_order("gxERR", "BTC/USDT", "BUY", Decimal("0.01"), Decimal("50000"))
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7


@pytest.mark.parametrize("failure", [TimeoutError(), aiohttp.ClientConnectionError()])
async def test_network_errors_on_create_mean_outcome_unknown(
    binance: Any, failure: BaseException
) -> None:
    exchange, fake = binance
    await exchange.markets()
    fake.raise_next = failure
    with pytest.raises(OutcomeUnknown):
        await exchange.create_order("gxNET", "BTC/USDT", "BUY", Decimal("0.01"), Decimal("50000"))


async def test_lookup_errors_are_mapped(binance: Any) -> None:
    exchange, fake = binance
    await exchange.markets()
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("gxNONE", "BTC/USDT")
    fake.raise_next = TimeoutError()
    with pytest.raises(ExchangeUnavailable):  # a lookup that fails is just retried later
        await exchange.fetch_order("gxNONE", "BTC/USDT")


def resting(fake: FakeBinance, cid: str, status: str = "NEW") -> None:
    """An order on the fake exchange's book, 0.1 of 0.3 filled."""
    fake.orders[cid] = {
        "orderId": len(fake.orders) + 1,
        "clientOrderId": cid,
        "side": "BUY",
        "price": "49000",
        "origQty": "0.3",
        "executedQty": "0.1",
        "quoteQty": "4900",
        "status": status,
    }


async def test_open_orders_under_our_prefix_are_listed(binance: Any) -> None:
    exchange, fake = binance
    resting(fake, "gxOURS", "PARTIALLY_FILLED")
    resting(fake, "someone-elses")
    resting(fake, "gxDONE", "FILLED")
    listed = await exchange.orders("gx")
    assert [(o.client_id, o.status, o.filled, o.quantity) for o in listed] == [
        ("gxOURS", "open", Decimal("0.1"), Decimal("0.3"))
    ]
    method, path, _ = exchange._x.session.requests[-1]
    assert (method, path) == ("GET", "/api/v3/openOrders")  # every symbol at once


def test_unknown_exchange_id_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ccxt exchange id"):
        CcxtExchange("x", "no-such-exchange", True, {})
