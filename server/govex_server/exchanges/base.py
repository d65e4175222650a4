"""The exchange protocol every account implements (paper now, ccxt later)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from govex_server.domain.errors import invalid_field, not_found
from govex_server.domain.execution.safety import Market

_ACCOUNT_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Balance:
    """What an account holds of one asset."""

    free: Decimal
    total: Decimal


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the exchange reports it."""

    client_id: str
    exchange_id: str
    symbol: str
    side: str  # "BUY" / "SELL"
    quantity: Decimal
    price: Decimal
    filled: Decimal
    average_price: Decimal
    fee: Decimal
    status: str  # "open", "closed" (filled), "canceled", "rejected"


class Exchange(Protocol):
    """One exchange account, as execution sees it."""

    account: str
    kind: str
    sandbox: bool
    quote: str
    # The longest a create request may take to be placed or refused by the
    # exchange (its receive window, in seconds): after a takeover, an order
    # the old owner sent is declared lost only once this has passed.
    accept_window: float

    async def markets(self) -> dict[str, Market]:
        """Precision and minimums per symbol ("BTC/USDT")."""
        ...

    async def balances(self) -> dict[str, Balance]:
        """Holdings per asset."""
        ...

    async def prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """Reference (last) prices of ``assets`` in the quote currency."""
        ...

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        """A limit order under our client order id (errors: exchanges.errors);
        the exchange receives the exact decimal strings."""
        ...

    async def fetch_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        """The order with our client order id, or OrderNotFound."""
        ...

    async def cancel_order(self, client_id: str, symbol: str) -> ExchangeOrder:
        """Cancels what is left; the order as it ends up."""
        ...

    async def orders(self, prefix: str, open_only: bool = False) -> list[ExchangeOrder]:
        """Orders whose client order id starts with ``prefix`` (reconciliation
        adopts ours that the store does not know). An account that can list
        only open orders lists those whatever ``open_only`` says."""
        ...


def is_account_id(text: str) -> bool:
    """Account ids are chosen by operators: a lower case letter, then lower
    case letters, digits and dashes, 63 at most."""
    return bool(_ACCOUNT_RE.match(text))


def parse_account(name: str, field: str = "exchange") -> str:
    """The account id of ``exchanges/{id}`` (ids are chosen by operators:
    lower case letters, digits and dashes)."""
    prefix = "exchanges/"
    if not name.startswith(prefix) or not is_account_id(name[len(prefix) :]):
        raise invalid_field(field, f"malformed exchange name {name[:80]!r}: exchanges/{{id}}")
    return name[len(prefix) :]


class ExchangeRegistry:
    """The configured accounts; the first one is the default."""

    def __init__(
        self,
        exchanges: Iterable[Exchange],
        wrap: Callable[[Exchange], Exchange] | None = None,
    ) -> None:
        # ``wrap`` is applied to every account held (the metrics' wrapper):
        # whoever calls an exchange goes through it.
        self._wrap = wrap or (lambda exchange: exchange)
        self._accounts = {e.account: self._wrap(e) for e in exchanges}
        if not self._accounts:
            raise ValueError("at least one exchange account is required")
        self.default = next(iter(self._accounts))

    def put(self, exchange: Exchange) -> None:
        """Adds or replaces an account (the default never changes)."""
        self._accounts[exchange.account] = self._wrap(exchange)

    def all(self) -> list[Exchange]:
        """Every account, the default first."""
        return list(self._accounts.values())

    def get(self, name: str) -> Exchange:
        """The account named ``exchanges/{id}``, or the default for ``""``."""
        account = parse_account(name) if name else self.default
        exchange = self._accounts.get(account)
        if exchange is None:
            raise not_found("govex.io/Exchange", f"exchanges/{account}")
        return exchange


class SameIdentity:
    """The base of an exchange wrapper (metrics, lease fencing): it answers
    to the wrapped account's identity; what it adds is around the calls."""

    def __init__(self, exchange: Exchange) -> None:
        self.account = exchange.account
        self.kind = exchange.kind
        self.sandbox = exchange.sandbox
        self.quote = exchange.quote
        self.accept_window = exchange.accept_window
