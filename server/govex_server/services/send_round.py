"""What one round of sends shares: the prices, markets and balances read
once for it (with what its orders hold of the balances), and its bounds
and shared writes (order_sender.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance
from govex_server.store.database import Store
from govex_server.store.shared_units import SharedUnits


@dataclass
class Quotes:
    """Prices, markets and balances read once for a round of sends; what the
    round's placed orders take is reserved here, so that the balance check of
    each later order sees it."""

    prices: Mapping[str, Decimal]
    markets: Mapping[str, Market]
    balances: Mapping[str, Balance]
    # The daily cap of the policy in force at the round (a fraction).
    current_cap: float
    reserved: dict[str, Decimal] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        """What is free of ``asset`` for the next order of the round."""
        held = self.balances[asset].free if asset in self.balances else money.ZERO
        return held - self.reserved.get(asset, money.ZERO)

    def reserve(self, asset: str, amount: Decimal) -> None:
        """Takes ``amount`` of ``asset`` for an order decided (a negative
        amount gives it back: the order was not sent after all)."""
        self.reserved[asset] = self.reserved.get(asset, money.ZERO) + amount


class Slots:
    """A round's bounds: ``at_exchange`` orders at the exchange at once, and
    as many again decided (SUBMITTED) and waiting for a slot; and the
    round's shared writes: the decisions taken while one unit of them was
    at the writer are written together, and so are the answers."""

    def __init__(self, at_exchange: int, store: Store) -> None:
        self.exchange = asyncio.Semaphore(at_exchange)
        self.ahead = asyncio.Semaphore(2 * at_exchange)
        # No more decisions a shared unit than there are slots: the first
        # sends wait for the first unit's commit (shared_units.py).
        self.decisions = SharedUnits(store, most=at_exchange)
        self.answers = SharedUnits(store)
