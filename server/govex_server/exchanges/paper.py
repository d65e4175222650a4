"""The paper exchange: the embedded default account, deterministic, with
balances, prices and market rules from configuration.

This is its read side (holdings, prices, markets), which ValidatePlan and dry
runs need. Sending orders (seeded fills, latency, slippage, partial fills,
injectable faults, a book persisted in a store of its own) is issue 5's
remaining work."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govex_server.domain.execution.safety import Market
from govex_server.exchanges.base import Balance


@dataclass(frozen=True)
class PaperConfig:
    """Starting balances, prices and market rules of the paper account."""

    quote: str = "USDT"
    fee_rate: float = 0.001
    balances: dict[str, float] = field(
        default_factory=lambda: {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0}
    )
    prices: dict[str, float] = field(
        default_factory=lambda: {"BTC": 50_000.0, "ETH": 2_500.0, "SOL": 150.0}
    )
    amount_step: float = 0.00001
    price_step: float = 0.01
    min_notional: float = 10.0

    @staticmethod
    def load(path: str) -> PaperConfig:
        """Reads a TOML file: ``quote``, ``fee_rate``, ``amount_step``,
        ``price_step``, ``min_notional``, ``[balances]``, ``[prices]``."""
        document: dict[str, Any] = tomllib.loads(Path(path).read_text())
        unknown = set(document) - {f for f in PaperConfig.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        config = PaperConfig(**document)
        for name, table in (("balances", config.balances), ("prices", config.prices)):
            for asset, value in table.items():
                if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                    raise ValueError(f"{path}: {name}.{asset} must be a number >= 0")
        return config


class PaperExchange:
    """The paper account (always a sandbox: it never touches real money)."""

    kind = "paper"
    sandbox = True

    def __init__(self, account: str, config: PaperConfig) -> None:
        self.account = account
        self.quote = config.quote
        self._config = config

    async def markets(self) -> dict[str, Market]:
        """One market per priced asset against the quote currency."""
        c = self._config
        return {
            f"{asset}/{c.quote}": Market(c.amount_step, c.price_step, c.min_notional)
            for asset in c.prices
        }

    async def balances(self) -> dict[str, Balance]:
        """The configured holdings, all free."""
        return {a: Balance(q, q) for a, q in self._config.balances.items() if q > 0}

    async def prices(self, assets: Iterable[str]) -> dict[str, float]:
        """The configured prices of the assets that have one."""
        return {a: self._config.prices[a] for a in assets if a in self._config.prices}

    @property
    def fee_rate(self) -> float:
        """The taker fee."""
        return self._config.fee_rate
