"""Exact amounts: parsing the wire's decimals, the canonical text, and each
named rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from govex_server.domain import money
from govex_server.domain.errors import GovexError

D = Decimal


@pytest.mark.parametrize(
    ("value", "step", "down", "floor", "ceil"),
    [
        ("9.9996", "0.001", "9.999", "9.999", "10"),  # half-even would give 10 for down
        ("-9.9996", "0.001", "-9.999", "-10", "-9.999"),  # down is towards zero
        ("0.3", "0.1", "0.3", "0.3", "0.3"),  # on the step: unchanged (not 0.2)
        ("100.8015", "0.5", "100.5", "100.5", "101"),
        ("12345.6789", "0", "12345.6789", "12345.6789", "12345.6789"),  # no step
        ("7", "10", "0", "0", "10"),
    ],
)
def test_each_rounding_goes_its_named_way(
    value: str, step: str, down: str, floor: str, ceil: str
) -> None:
    assert money.text(money.down_to(D(value), D(step))) == down
    assert money.text(money.floor_to(D(value), D(step))) == floor
    assert money.text(money.ceil_to(D(value), D(step))) == ceil


def test_on_step_is_exact() -> None:
    assert money.on_step(D("0.3"), D("0.1"))
    assert not money.on_step(D("0.30000000000000004"), D("0.1"))
    assert money.on_step(D("5"), D(0))


def test_text_is_plain_keeps_the_scale_and_never_says_minus_zero() -> None:
    assert money.text(D("1E+3")) == "1000"
    assert money.text(D("0.10")) == "0.10"
    assert money.text(D("-0.00")) == "0.00"
    assert money.text(D("1E-18")) == "0.000000000000000001"


def test_floats_from_configuration_are_taken_as_written() -> None:
    assert money.exact(0.1) == D("0.1")
    assert money.from_ratio(12.5) == D("12.5")
    assert money.exact("0.00001") == D("0.00001")


def test_notional_and_cents() -> None:
    assert money.text(money.notional(D("1.123456789"))) == "1.12345678"  # cut down
    assert money.text(money.cents(D("2.345"))) == "2.34"  # half even
    assert money.text(money.cents(D("2.355"))) == "2.36"


@pytest.mark.parametrize("text", ["12.5", "-3", ".5", "5.", "1e3", "+0.0001"])
def test_the_decimal_grammar_is_accepted(text: str) -> None:
    assert money.parse(text, "x") == D(text)


@pytest.mark.parametrize("text", ["", " 1", "1,5", "0x10", "1e31", "1" * 41, "inf"])
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(GovexError) as caught:
        money.parse(text, "price.value")
    assert [v.field for v in caught.value.field_violations] == ["price.value"]
