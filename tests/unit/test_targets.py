"""Target validation: the hand-picked bad inputs, and properties over many."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govex_server.domain.errors import Category, GovexError
from govex_server.domain.plans import Target
from govex_server.domain.targets import MAX_ASSETS, validate_targets


def fields_of(targets: list[Target]) -> list[str]:
    with pytest.raises(GovexError) as caught:
        validate_targets(targets)
    assert caught.value.category is Category.INVALID_ARGUMENT
    return [v.field for v in caught.value.field_violations]


def test_valid_targets_pass_unchanged() -> None:
    targets = [Target("BTC", 50), Target("ETH", 30), Target("USDT", 20)]
    assert validate_targets(targets) == tuple(targets)


def test_a_stable_cannot_be_a_hedge() -> None:
    assert fields_of([Target("BTC", 95), Target("USDC", 5, hedge=True)]) == ["targets[1].hedge"]
    hedged = [Target("BTC", 95), Target("BTCDOWN", 5, hedge=True)]
    assert validate_targets(hedged) == tuple(hedged)


def test_sum_within_tolerance_passes() -> None:
    validate_targets([Target("BTC", 50.005), Target("USDT", 50.0)])


def test_weights_not_summing_to_100_name_the_targets_field() -> None:
    assert fields_of([Target("BTC", 50), Target("USDT", 49)]) == ["targets"]


@pytest.mark.parametrize("weight", [-5.0, 0.0, math.nan, math.inf, 100.5])
def test_bad_weight_names_the_weight_field(weight: float) -> None:
    assert fields_of([Target("BTC", weight), Target("USDT", 100)]) == ["targets[0].weight_percent"]


def test_duplicate_asset_names_the_second_occurrence() -> None:
    assert fields_of([Target("BTC", 50), Target("BTC", 50)]) == ["targets[1].asset"]


@pytest.mark.parametrize("asset", ["", "btc", "B TC", "X" * 21, "ÉTH"])
def test_malformed_asset_names_the_asset_field(asset: str) -> None:
    assert fields_of([Target("USDT", 50), Target(asset, 50)]) == ["targets[1].asset"]


def test_no_targets_is_refused() -> None:
    assert fields_of([]) == ["targets"]


def test_201_assets_are_refused_and_200_accepted() -> None:
    over = [Target(f"A{i}", 100 / (MAX_ASSETS + 1)) for i in range(MAX_ASSETS + 1)]
    assert fields_of(over) == ["targets"]
    exact = [Target(f"A{i}", 100 / MAX_ASSETS) for i in range(MAX_ASSETS)]
    assert len(validate_targets(exact)) == MAX_ASSETS


assets = st.from_regex(r"[A-Z][A-Z0-9]{0,7}", fullmatch=True)


@given(st.lists(assets, min_size=1, max_size=40, unique=True), st.data())
def test_any_partition_of_100_is_valid(names: list[str], data: st.DataObject) -> None:
    raw = data.draw(st.lists(st.integers(1, 1000), min_size=len(names), max_size=len(names)))
    total = sum(raw)
    targets = [Target(n, 100 * r / total) for n, r in zip(names, raw, strict=True)]
    assert validate_targets(targets) == tuple(targets)


@given(
    st.lists(assets, min_size=1, max_size=20, unique=True),
    st.floats(min_value=0.02, max_value=50),
)
def test_any_sum_off_by_more_than_the_tolerance_is_refused(names: list[str], off: float) -> None:
    share = (100 + off) / len(names)
    if share > 100:
        return
    targets = [Target(n, share) for n in names]
    with pytest.raises(GovexError) as caught:
        validate_targets(targets)
    assert [v.field for v in caught.value.field_violations] == ["targets"]


@given(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 3))
def test_every_out_of_range_weight_is_named(weight: float, position: int) -> None:
    if math.isfinite(weight) and 0 < weight <= 100:
        return
    targets = [Target(f"A{i}", 25.0) for i in range(4)]
    targets[position] = Target(f"A{position}", weight)
    with pytest.raises(GovexError) as caught:
        validate_targets(targets)
    assert f"targets[{position}].weight_percent" in [v.field for v in caught.value.field_violations]
