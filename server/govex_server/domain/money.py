"""Exact amounts: every quantity, price, notional, fee, balance and value is a
``decimal.Decimal``, on the wire (google.type.Decimal), in the domain, in the
store and towards the exchanges.

Where rounding happens it is named: amounts are cut *down* onto the
exchange's amount step (never trade more than planned or held), limit prices
are moved *towards the fill* onto the price step only in the direction that
allows less slippage, notionals in the quote currency are cut down to
``QUOTE_STEP``. Ratios (weights, percentages, signals) stay floats: they are
for people and for the policy, and only reach money through
``from_ratio``."""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from govex_server.domain.errors import invalid_field

# 50 significant digits: an 18-decimal amount times an 18-decimal price never
# rounds; anything that would is an error, not a silent approximation.
CONTEXT = decimal.Context(
    prec=50,
    rounding=ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
# Plain ``a + b`` between amounts must not round either: every thread's
# default context gets the money context's precision (threads started later
# copy DefaultContext; the importing thread's context is set here).
decimal.DefaultContext.prec = CONTEXT.prec
decimal.getcontext().prec = CONTEXT.prec
ZERO = Decimal(0)
ONE = Decimal(1)
# Notionals in the quote currency (legs, slices, daily totals) are kept to
# this step, rounded down.
QUOTE_STEP = Decimal("1e-8")
# A leg's quantity at the reference price, rounded down; an order's quantity
# is then cut onto the market's amount step.
QUANTITY_STEP = Decimal("1e-12")
CENT = Decimal("0.01")
# google.type.Decimal's grammar (sign, digits with an optional point, an
# optional exponent), with the limits govex accepts.
_DECIMAL_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
MAX_DIGITS = 40
MAX_TEXT = 64


def parse(text: str, field: str) -> Decimal:
    """A google.type.Decimal's value as an exact Decimal; INVALID_ARGUMENT
    naming ``field`` when it is not a finite decimal of at most 40 digits."""
    if not text:
        raise invalid_field(field, "required: a decimal such as 12.5")
    if len(text) > MAX_TEXT or not _DECIMAL_RE.match(text):
        raise invalid_field(field, f"{text[:40]!r} is not a decimal such as 12.5")
    value = Decimal(text)
    digits = value.as_tuple().digits
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, from the pattern above
    if len(digits) > MAX_DIGITS or not -30 <= exponent <= 30:
        raise invalid_field(field, f"{text[:40]!r} has more precision than govex keeps")
    return value


def text(value: Decimal) -> str:
    """The canonical wire and storage form: plain notation, no exponent, the
    value's own scale ("0.10" stays "0.10"), never "-0"."""
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    if value.is_zero():
        value = abs(value)
    return format(value, "f")


def exact(value: float | int | str | Decimal) -> Decimal:
    """A number as the decimal it was written as (from configuration, from
    a stored row): a float goes through its shortest repr, so ``0.1`` is
    ``Decimal("0.1")``; text and integers are exact already."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def from_ratio(ratio: float) -> Decimal:
    """A float ratio (a percentage, a weight) entering money arithmetic,
    through its shortest repr: the number the client wrote."""
    return Decimal(repr(float(ratio)))


def mul(a: Decimal, b: Decimal) -> Decimal:
    """``a x b`` in the money context."""
    return CONTEXT.multiply(a, b)


def div(a: Decimal, b: Decimal) -> Decimal:
    """``a / b`` in the money context (50 digits, half even)."""
    return CONTEXT.divide(a, b)


def _trim(value: Decimal) -> Decimal:
    """A computed amount without trailing zeros (15000, not 15000.00000000):
    its precision is the step it was cut to, not the digits shown."""
    return value.quantize(ONE) if value == value.to_integral_value() else value.normalize()


def down_to(value: Decimal, step: Decimal) -> Decimal:
    """``value`` cut down (towards zero) onto a multiple of ``step``; as is
    without a step."""
    if step <= 0:
        return value
    units = CONTEXT.divide(value, step).to_integral_value(rounding=ROUND_DOWN)
    return _trim(CONTEXT.multiply(units, step))


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded down (towards minus infinity) onto ``step``."""
    if step <= 0:
        return value
    units = CONTEXT.divide(value, step).to_integral_value(rounding=ROUND_FLOOR)
    return _trim(CONTEXT.multiply(units, step))


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded up (towards plus infinity) onto ``step``."""
    if step <= 0:
        return value
    units = CONTEXT.divide(value, step).to_integral_value(rounding=ROUND_CEILING)
    return _trim(CONTEXT.multiply(units, step))


def on_step(value: Decimal, step: Decimal) -> bool:
    """True when ``value`` is an exact multiple of ``step`` (or no step)."""
    return step <= 0 or CONTEXT.remainder(value, step).is_zero()


def notional(value: Decimal) -> Decimal:
    """A quote-currency notional cut down to ``QUOTE_STEP``."""
    return down_to(value, QUOTE_STEP)


def cents(value: Decimal) -> Decimal:
    """An estimate shown in money, rounded half even to the cent."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN, context=CONTEXT)


def _add_text(a: str | None, b: str | None) -> str | None:
    """``a + b`` of two amounts stored as decimal text, exactly (NULL stays
    NULL, as SQL's + would)."""
    if a is None or b is None:
        return None
    return text(CONTEXT.add(Decimal(a), Decimal(b)))


def register_sqlite_add(connection: Any) -> None:
    """Registers ``govex_decimal_add(a, b)`` on a sqlite3 connection: exact
    sums of decimal text inside SQLite (whose own + goes through binary
    floats), in the statement that writes them, with no read into Python."""
    connection.create_function("govex_decimal_add", 2, _add_text, deterministic=True)
