"""The console's forms read as the services' arguments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govex_server.console.forms import parse_freeze, parse_targets
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.freezes import FreezeType
from govex_server.domain.plans import Target


def test_targets_one_per_line_with_hedges_and_blank_lines() -> None:
    text = "btc 50\n\n ETH, 30% \nBTC-PERP 5 hedge\nUSDT 15\n"
    assert parse_targets(text) == [
        Target("BTC", 50.0),
        Target("ETH", 30.0),
        Target("BTC-PERP", 5.0, True),
        Target("USDT", 15.0),
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "at least one line"),
        ("BTC 50\nETH", "line 2 is not 'ASSET PERCENT'"),
        ("BTC fifty", "line 1: 'fifty' is not a percent"),
        ("BTC nan", "line 1: 'nan' is not a percent"),
        ("BTC 5 short", "line 1 is not 'ASSET PERCENT'"),
    ],
)
def test_targets_that_cannot_be_read_name_the_line(text: str, why: str) -> None:
    with pytest.raises(GovexError) as refused:
        parse_targets(text)
    assert refused.value.category is Category.INVALID_ARGUMENT
    assert refused.value.message.startswith("targets: ") and why in refused.value.message


def test_freeze_form() -> None:
    assert parse_freeze("FULL_FREEZE", "90") == (FreezeType.FULL_FREEZE, timedelta(minutes=90))
    for kind, ttl, field in [
        ("EVERYTHING", "60", "type"),
        ("FULL_FREEZE", "soon", "ttl_minutes"),
        ("FULL_FREEZE", "1e300", "ttl_minutes"),  # would overflow timedelta
        ("FULL_FREEZE", "inf", "ttl_minutes"),
    ]:
        with pytest.raises(GovexError) as refused:
            parse_freeze(kind, ttl)
        assert refused.value.message.startswith(f"{field}: ")
