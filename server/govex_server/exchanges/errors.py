"""What can go wrong at an exchange, in our terms (the ccxt adapter maps
ccxt's errors to these; the paper exchange raises them on injected faults)."""

from __future__ import annotations

from govex_server.domain.errors import Category, GovexError


class ExchangeError(Exception):
    """Any exchange failure."""


class OrderRejected(ExchangeError):
    """The exchange refused the order; nothing was placed. Safe to report."""


class InsufficientFunds(OrderRejected):
    """Refused for lack of balance."""


class OrderNotFound(ExchangeError):
    """No order with that client order id."""


class OutcomeUnknown(ExchangeError):
    """The request may or may not have reached the exchange (network error,
    timeout): resolve by looking the client order id up, never by resending
    under a new id."""


class RateLimited(ExchangeError):
    """Too many requests (HTTP 429); wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExchangeUnavailable(ExchangeError):
    """The exchange is down (HTTP 503); nothing was placed."""


def unreachable(account: str, exc: ExchangeError) -> GovexError:
    """UNAVAILABLE (retry in 5 s) for a read of ``exchanges/{account}`` that
    failed: what ValidatePlan and GetExchange answer."""
    return GovexError(
        Category.UNAVAILABLE,
        "EXCHANGE_UNAVAILABLE",
        f"exchanges/{account} cannot be reached: {exc}"[:500],
        retry_after_seconds=5,
        metadata={"exchange": f"exchanges/{account}"},
    )
