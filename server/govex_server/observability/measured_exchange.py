"""Every exchange call timed and its failures counted, for every account:
the registry wraps each exchange it holds (one place, whoever calls)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance, Exchange, ExchangeOrder, SameIdentity
from govex_server.observability.metrics import Metrics

T = TypeVar("T")


class MeasuredExchange(SameIdentity):
    """``exchange`` with its calls observed. Anything that is not a call of
    the Exchange protocol (``close``, ``ccxt_id``, the paper exchange's test
    hooks) is the wrapped exchange's own."""

    def __init__(self, exchange: Exchange, metrics: Metrics) -> None:
        super().__init__(exchange)
        self.inner = exchange
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _timed(self, call: str, work: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await work()
        except Exception as exc:
            self._metrics.exchange_errors.labels(self.account, call, type(exc).__name__).inc()
            raise
        finally:
            self._metrics.exchange_seconds.labels(self.account, call).observe(
                time.perf_counter() - started
            )

    async def markets(self) -> dict[str, Market]:
        return await self._timed("markets", self.inner.markets)

    async def balances(self) -> dict[str, Balance]:
        return await self._timed("balances", self.inner.balances)

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        return await self._timed("prices", lambda: self.inner.prices(assets))

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        return await self._timed(
            "create_order",
            lambda: self.inner.create_order(client_id, symbol, side, quantity, price),
        )

    async def fetch_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        return await self._timed("fetch_order", lambda: self.inner.fetch_order(client_id, symbol))

    async def cancel_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        return await self._timed("cancel_order", lambda: self.inner.cancel_order(client_id, symbol))

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        return await self._timed("orders", lambda: self.inner.orders(prefix, open_only))
