"""An exchange as one execution's runner sees it: every call first checks
that this replica still holds the execution's lease (a replica that does not
own an execution never calls the exchange for it)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance, Exchange, ExchangeOrder, SameIdentity
from govex_server.services.leases import Leases


class FencedExchange(SameIdentity):
    """``exchange`` behind the lease check of ``execution_id``."""

    def __init__(self, exchange: Exchange, leases: Leases, execution_id: str) -> None:
        super().__init__(exchange)
        self._exchange = exchange
        self._leases = leases
        self._execution_id = execution_id

    def _check(self) -> None:
        self._leases.check(self._execution_id)

    async def markets(self) -> dict[str, Market]:
        self._check()
        return await self._exchange.markets()

    async def balances(self) -> dict[str, Balance]:
        self._check()
        return await self._exchange.balances()

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        self._check()
        return await self._exchange.prices(assets)

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        self._check()
        return await self._exchange.create_order(client_id, symbol, side, quantity, price)

    async def fetch_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        self._check()
        return await self._exchange.fetch_order(client_id, symbol)

    async def cancel_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        self._check()
        return await self._exchange.cancel_order(client_id, symbol)

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        self._check()
        return await self._exchange.orders(prefix, open_only)
