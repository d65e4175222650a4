"""GetExchange and ListExchanges: the configured accounts, and one account's
balances and markets read from the exchange now."""

from __future__ import annotations

from dataclasses import dataclass

from govex_server.domain import filters, list_filters
from govex_server.domain.errors import invalid_field
from govex_server.domain.execution.safety import Market
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.exchanges.base import (
    Balance,
    Exchange,
    ExchangeRegistry,
    is_account_id,
    parse_account,
)
from govex_server.exchanges.errors import ExchangeError, unreachable


@dataclass(frozen=True)
class ExchangeDetails:
    """One account with what the exchange says now."""

    exchange: Exchange
    balances: dict[str, Balance]
    markets: dict[str, Market]


class ExchangeViews:
    """Read-only views of the registry's accounts."""

    def __init__(self, exchanges: ExchangeRegistry) -> None:
        self._exchanges = exchanges

    def list(
        self, page_size: int, page_token: str, filter_text: str = ""
    ) -> tuple[list[Exchange], str]:
        """Accounts sorted by id, meeting the AIP-160 ``filter_text``."""
        conditions = filters.parse(filter_text, list_filters.EXCHANGES)
        page = parse_page(
            page_size,
            page_token,
            filter_key(filters.key(conditions)),
            is_account_id,
        )
        found = [
            e
            for e in sorted(self._exchanges.all(), key=lambda e: e.account)
            if (page.after_id is None or e.account > page.after_id)
            and filters.matches(conditions, _fields(e))
        ]
        shown = found[: page.size]
        last = shown[-1].account if shown else None
        return shown, next_token(page, last, len(found) > page.size)

    async def details(self, name: str) -> ExchangeDetails:
        """The account named ``exchanges/{id}`` with its balances and markets;
        UNAVAILABLE (retry) when the exchange cannot be reached."""
        if not name:
            raise invalid_field("name", "required: exchanges/{exchange}")
        parse_account(name, "name")
        exchange = self._exchanges.get(name)
        try:
            balances = await exchange.balances()
            markets = await exchange.markets()
        except ExchangeError as exc:
            raise unreachable(exchange.account, exc) from exc
        return ExchangeDetails(exchange, balances, markets)


def _fields(exchange: Exchange) -> dict[str, object]:
    return {
        "kind": exchange.kind.upper(),
        "sandbox": exchange.sandbox,
        "ccxt_id": getattr(exchange, "ccxt_id", ""),
        "quote_currency": exchange.quote,
    }
