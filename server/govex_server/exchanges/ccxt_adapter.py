"""Any ccxt exchange as an Exchange account (``ccxt.async_support``).

ccxt's own classes do the signing, parsing and error mapping; this adapter
maps ccxt's errors to ours. The rule that matters most: a NetworkError (a
timeout, a dropped connection, an unavailable exchange) while *creating* an
order means the outcome is unknown, to be resolved by looking the client
order id up, never by sending again under a new id."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from govex_server.domain import money
from govex_server.domain.errors import failed_precondition
from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance, ExchangeOrder
from govex_server.exchanges.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)

KNOWN_IDS = frozenset(ccxt_async.exchanges)
_STATUS = {
    "open": "open",
    "closed": "closed",
    "canceled": "canceled",
    "expired": "canceled",
    "rejected": "rejected",
}


def _amount(value: Any) -> Decimal:
    """A number from ccxt, exactly: ccxt parses with ``number = str``, so this
    is the exchange's own decimal text (0 when it sent nothing)."""
    if value is None or value == "":
        return money.ZERO
    if isinstance(value, float):  # a value ccxt computed itself
        return money.exact(value)
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise ExchangeError(f"the exchange sent {str(value)[:40]!r} for a number") from None
    if not parsed.is_finite():
        raise ExchangeError(f"the exchange sent {str(value)[:40]!r} for a number")
    return parsed


def _retry_after(exchange: Any) -> float:
    headers = getattr(exchange, "last_response_headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0


class CcxtExchange:
    """One account on a ccxt exchange."""

    kind = "ccxt"

    def __init__(
        self,
        account: str,
        ccxt_id: str,
        sandbox: bool,
        credentials: dict[str, str],
        quote: str = "USDT",
        session: Any = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if ccxt_id not in KNOWN_IDS:
            raise ValueError(f"unknown ccxt exchange id {ccxt_id!r}")
        config: dict[str, Any] = {
            "apiKey": credentials.get("api_key", ""),
            "secret": credentials.get("secret", ""),
            "password": credentials.get("password", ""),
            # Our own limiter paces orders; ccxt's would double-throttle.
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                # Reconciliation lists every open order once at start-up:
                # Binance's warning against that (it is rate-limited) would
                # refuse the call.
                "warnOnFetchOpenOrdersWithoutSymbol": False,
                **(options or {}),
            },
        }
        if session is not None:
            config["session"] = session  # a fake transport in tests
        self.account = account
        self.ccxt_id = ccxt_id
        self.sandbox = sandbox
        self.quote = quote
        self._x: Any = getattr(ccxt_async, ccxt_id)(config)
        # Parse every number the exchange sends as its decimal text, never
        # through a binary float.
        self._x.number = str
        # A request may be on its way for its timeout; one signed with a
        # timestamp is refused past the exchange's recvWindow (Binance).
        window_ms = max(float(self._x.timeout), float(self._x.options.get("recvWindow", 0)))
        self.accept_window = window_ms / 1000
        # None until a call was made; then whether the last one reached it.
        self.reachable: bool | None = None
        # When ConnectExchange last configured the account (set by it).
        self.update_time: datetime | None = None
        if sandbox:
            # ccxt fails with a TypeError for an exchange without test URLs.
            if not self._x.urls.get("test"):
                raise failed_precondition(
                    "SANDBOX_UNSUPPORTED",
                    f"exchanges/{account}",
                    f"{ccxt_id} has no sandbox (testnet) in ccxt; connect it with sandbox=false",
                )
            self._x.set_sandbox_mode(True)

    async def close(self) -> None:
        """Closes ccxt's HTTP session."""
        await self._x.close()

    async def _call(self, method: str, *args: Any, creating: bool = False) -> Any:
        try:
            result = await getattr(self._x, method)(*args)
            self.reachable = True
            return result
        except ccxt_errors.InsufficientFunds as exc:
            raise InsufficientFunds(str(exc)) from exc
        except ccxt_errors.OrderNotFound as exc:
            raise OrderNotFound(str(exc)) from exc
        except ccxt_errors.InvalidOrder as exc:  # includes "Duplicate order sent"
            raise OrderRejected(str(exc)) from exc
        except (ccxt_errors.DDoSProtection, ccxt_errors.RateLimitExceeded) as exc:  # HTTP 429
            raise RateLimited(str(exc), _retry_after(self._x)) from exc
        except ccxt_errors.NetworkError as exc:
            self.reachable = False
            if creating:
                raise OutcomeUnknown(str(exc)) from exc
            raise ExchangeUnavailable(str(exc)) from exc
        except ccxt_errors.BaseError as exc:
            if creating:
                raise OrderRejected(str(exc)) from exc
            raise ExchangeError(str(exc)) from exc

    async def markets(self) -> dict[str, Market]:
        """Precision (as steps) and minimums per spot symbol."""
        loaded = await self._call("load_markets")
        out = {}
        for symbol, m in loaded.items():
            if not m.get("spot", True):
                continue
            limits, precision = m.get("limits", {}), m.get("precision", {})
            out[symbol] = Market(
                amount_step=_amount(precision.get("amount")),
                price_step=_amount(precision.get("price")),
                min_notional=_amount((limits.get("cost") or {}).get("min")),
                min_amount=_amount((limits.get("amount") or {}).get("min")),
            )
        return out

    async def balances(self) -> dict[str, Balance]:
        """Free and total per asset."""
        raw = await self._call("fetch_balance")
        out = {}
        for asset, total in (raw.get("total") or {}).items():
            held = _amount(total)
            if held:
                out[asset] = Balance(_amount((raw.get("free") or {}).get(asset)), held)
        return out

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """Last prices against the quote currency."""
        symbols = [f"{a}/{self.quote}" for a in assets if a != self.quote]
        tickers = await self._call("fetch_tickers", symbols)
        return {
            symbol.split("/")[0]: _amount(t["last"])
            for symbol, t in tickers.items()
            if t.get("last") is not None
        }

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        """A limit order carrying our client order id; ccxt gets the amounts as
        decimal strings, which it puts in the request as they are."""
        raw = await self._call(
            "create_order",
            symbol,
            "limit",
            side.lower(),
            money.text(quantity),
            money.text(price),
            {"clientOrderId": client_id},
            creating=True,
        )
        return self._order(raw, client_id)

    async def fetch_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        """The order with our client order id."""
        raw = await self._call("fetch_order", None, symbol, {"clientOrderId": client_id})
        return self._order(raw, client_id)

    async def cancel_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        """Cancels by client order id; the order as the exchange reports it."""
        raw = await self._call("cancel_order", None, symbol, {"clientOrderId": client_id})
        return self._order(raw, client_id)

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        """The account's open orders under our client order id prefix
        (``fetch_open_orders`` over every symbol; ccxt has no portable way to
        list closed orders by client id). ExchangeError when the exchange
        cannot list open orders at all."""
        if not self._x.has.get("fetchOpenOrders"):
            raise ExchangeError(f"{self.ccxt_id} cannot list open orders (no fetchOpenOrders)")
        raw = await self._call("fetch_open_orders")
        return [
            self._order(r, str(r.get("clientOrderId")))
            for r in raw
            if str(r.get("clientOrderId") or "").startswith(prefix)
        ]

    def _order(self, raw: dict[str, Any], client_id: str) -> ExchangeOrder:
        fee = raw.get("fee") or {}
        return ExchangeOrder(
            client_id=raw.get("clientOrderId") or client_id,
            exchange_id=str(raw.get("id") or ""),
            symbol=raw.get("symbol") or "",
            side=str(raw.get("side") or "").upper(),
            quantity=_amount(raw.get("amount")),
            price=_amount(raw.get("price")),
            filled=_amount(raw.get("filled")),
            average_price=_amount(raw.get("average")),
            fee=_amount(fee.get("cost")),
            status=_STATUS.get(str(raw.get("status")), "open"),
        )
