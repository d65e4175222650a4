"""Orders: the state machine, and client order ids derived from (execution,
leg, slice, attempt) so that a retry after an unknown outcome looks the same
order up instead of sending a second one."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal

from govex_server.domain.errors import failed_precondition
from govex_server.domain.ids import is_valid_id

PREFIX = "gx"
# Exchanges limit client order ids (Binance: 36 characters, [a-zA-Z0-9-_]).
MAX_LENGTH = 36
_ID_RE = re.compile(r"^gx([0-9A-Z]{12})L(\d{3})S(\d{3})A(\d{2})$")


class OrderState(enum.Enum):
    """Where an order stands (DESIGN.md §4)."""

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        """Nothing moves an order out of FILLED, CANCELLED, REJECTED, EXPIRED."""
        return self in TERMINAL


TERMINAL = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.EXPIRED}
)
# An order that is, or may be, at the exchange: what it may still trade
# counts against the day's limits before its fills are recorded.
AT_EXCHANGE = frozenset(
    {OrderState.SUBMITTED, OrderState.UNKNOWN, OrderState.OPEN, OrderState.PARTIALLY_FILLED}
)
_O = OrderState
_AFTER_SEND = frozenset(
    {_O.OPEN, _O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.REJECTED, _O.EXPIRED}
)

# state -> states it may move to. PENDING rows are committed before the
# exchange call; a send whose outcome is unknown (network error, timeout)
# moves to UNKNOWN and is resolved by looking the client order id up.
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    _O.PENDING: frozenset({_O.SUBMITTED, _O.REJECTED, _O.CANCELLED, _O.UNKNOWN}),
    _O.SUBMITTED: _AFTER_SEND | {_O.UNKNOWN},
    _O.UNKNOWN: _AFTER_SEND,
    _O.OPEN: frozenset({_O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.EXPIRED}),
    _O.PARTIALLY_FILLED: frozenset({_O.PARTIALLY_FILLED, _O.FILLED, _O.CANCELLED, _O.EXPIRED}),
    _O.FILLED: frozenset(),
    _O.CANCELLED: frozenset(),
    _O.REJECTED: frozenset(),
    _O.EXPIRED: frozenset(),
}


def can_move(current: OrderState, target: OrderState) -> bool:
    """True when the state machine allows ``current -> target``."""
    return target in TRANSITIONS[current]


def move(order_name: str, current: OrderState, target: OrderState) -> OrderState:
    """``target``, or FAILED_PRECONDITION ORDER_STATE."""
    if not can_move(current, target):
        raise failed_precondition(
            "ORDER_STATE",
            order_name,
            f"{order_name} cannot go from {current.value} to {target.value}",
        )
    return target


def state_of(status: str, filled: Decimal) -> OrderState:
    """What an exchange's order status means here ("open", "closed",
    "canceled", "rejected", as the exchange adapters normalise them)."""
    if status == "closed":
        return OrderState.FILLED
    if status == "canceled":
        return OrderState.CANCELLED
    if status == "rejected":
        return OrderState.REJECTED
    return OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.OPEN


@dataclass(frozen=True)
class ClientOrderKey:
    """What a client order id encodes."""

    execution_tag: str
    leg: int
    slice: int
    attempt: int


def client_order_id(execution_id: str, leg: int, slice_index: int, attempt: int) -> str:
    """``gx`` + the last 12 characters of the execution id (its random part)
    + leg, slice and attempt: deterministic, 24 characters, and every order of
    an execution shares the prefix ``gx<tag>`` (found again by reconciliation)."""
    if not is_valid_id(execution_id):
        raise ValueError(f"not an execution id: {execution_id!r}")
    if not (0 <= leg < 1000 and 0 <= slice_index < 1000 and 0 <= attempt < 100):
        raise ValueError("leg and slice must be < 1000, attempt < 100")
    value = f"{PREFIX}{execution_id[-12:]}L{leg:03d}S{slice_index:03d}A{attempt:02d}"
    assert len(value) <= MAX_LENGTH
    return value


def execution_prefix(execution_id: str) -> str:
    """The prefix every client order id of the execution starts with."""
    return f"{PREFIX}{execution_id[-12:]}"


def parse_client_order_id(value: str) -> ClientOrderKey | None:
    """The key of one of our ids, None for anybody else's."""
    match = _ID_RE.match(value)
    if match is None:
        return None
    tag, leg, slice_index, attempt = match.groups()
    return ClientOrderKey(tag, int(leg), int(slice_index), int(attempt))


def next_fill(
    order_name: str, filled_before: Decimal, filled_now: Decimal, quantity: Decimal
) -> Decimal:
    """Fills only grow and never exceed the order's quantity (exactly)."""
    if filled_now < filled_before:
        raise failed_precondition(
            "ORDER_FILL", order_name, f"fill went back from {filled_before} to {filled_now}"
        )
    if filled_now > quantity:
        raise failed_precondition(
            "ORDER_FILL", order_name, f"filled {filled_now} exceeds the quantity {quantity}"
        )
    return filled_now
