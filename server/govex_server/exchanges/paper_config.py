"""The paper account's configuration: balances, prices, fees, slippage,
latency and partial fills, from a TOML file or the embedded defaults."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from govex_server.domain import money

D = Decimal
# Decimals are immutable: safe as dataclass defaults.
_FEE_RATE, _AMOUNT_STEP, _PRICE_STEP, _MIN_NOTIONAL = D("0.001"), D("0.00001"), D("0.01"), D(10)


@dataclass(frozen=True)
class PaperConfig:
    """Starting balances, prices and market rules of the paper account."""

    quote: str = "USDT"
    fee_rate: Decimal = _FEE_RATE
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"USDT": D(100_000), "BTC": D(1), "ETH": D(10)}
    )
    prices: dict[str, Decimal] = field(
        default_factory=lambda: {"BTC": D(50_000), "ETH": D(2_500), "SOL": D(150)}
    )
    amount_step: Decimal = _AMOUNT_STEP
    price_step: Decimal = _PRICE_STEP
    min_notional: Decimal = _MIN_NOTIONAL
    # Fill model: buys fill at reference x (1 + slippage), sells at
    # reference x (1 - slippage), if the limit allows; else the order rests.
    slippage_bps: float = 5.0
    latency_ms: float = 0.0
    # A create request that reaches the book later than this after it was
    # sent (on top of its way there, half of latency_ms) is refused, as
    # Binance's recvWindow does: how an exchange keeps a late request (a
    # paused replica's) from placing an order after another replica has
    # looked it up and moved on.
    recv_window_ms: float = 5000.0
    # Share of an order filled at once (1 = all); the rest rests open.
    fill_ratio: float = 1.0

    @staticmethod
    def load(path: str) -> PaperConfig:
        """Reads a TOML file: ``quote``, ``fee_rate``, ``amount_step``,
        ``price_step``, ``min_notional``, ``[balances]``, ``[prices]``. Amounts
        may be written as numbers (taken as written: ``0.1`` is exactly 0.1)
        or as decimal strings."""
        document: dict[str, Any] = tomllib.loads(Path(path).read_text())
        unknown = set(document) - {f for f in PaperConfig.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        for key in ("fee_rate", "amount_step", "price_step", "min_notional"):
            if key in document:
                document[key] = _amount(path, key, document[key])
        for name in ("balances", "prices"):
            if name in document:
                document[name] = {
                    asset: _amount(path, f"{name}.{asset}", value)
                    for asset, value in document[name].items()
                }
        return PaperConfig(**document)


def _amount(path: str, key: str, value: Any) -> Decimal:
    """A configured amount: a number or a decimal string, finite, >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{path}: {key} must be a number >= 0")
    try:
        parsed = money.exact(value)
    except ArithmeticError:
        raise ValueError(f"{path}: {key} must be a number >= 0") from None
    if not parsed.is_finite() or parsed < 0:
        raise ValueError(f"{path}: {key} must be a number >= 0")
    return parsed
