"""The AIP-160 subset of every List's ``filter``: what parses, what is
refused (with the field and the position), and how conditions match."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from govex_server.domain import list_filters
from govex_server.domain.errors import GovexError
from govex_server.domain.filters import Condition, matches, parse


def test_an_empty_filter_has_no_conditions() -> None:
    assert parse("", list_filters.PLANS) == []
    assert parse("   ", list_filters.PLANS) == []


def test_comparisons_joined_by_and_are_typed() -> None:
    text = (
        'state = ACTIVE AND create_time > "2026-01-01T00:00:00Z"'
        " AND update_time<=2026-02-01T00:00:00+01:00"
    )
    conditions = parse(text, list_filters.PLANS)
    assert conditions == [
        Condition("state", "=", "ACTIVE"),
        Condition("create_time", ">", datetime(2026, 1, 1, tzinfo=UTC)),
        Condition("update_time", "<=", datetime(2026, 1, 31, 23, tzinfo=UTC)),
    ]


def test_enums_take_the_proto_name_or_its_short_form() -> None:
    long = parse("state = PLAN_STATE_DRAFT", list_filters.PLANS)
    short = parse("state != DRAFT", list_filters.PLANS)
    assert (long[0].value, short[0].value, short[0].op) == ("DRAFT", "DRAFT", "!=")


def test_booleans_integers_and_quoted_strings() -> None:
    assert parse("sandbox = true", list_filters.EXCHANGES)[0].value is True
    assert parse("sequence >= 42", list_filters.AUDIT_RECORDS)[0].value == 42
    quoted = parse(r'resource = "plans/a \"b\""', list_filters.AUDIT_RECORDS)
    assert quoted[0].value == 'plans/a "b"'


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("colour = RED", "'colour' cannot be filtered on"),
        ("state = PURPLE", "state is one of"),
        ('state = "ACTIVE"', "state is one of"),  # enums are bare words
        ("state > ACTIVE", "state allows only != ="),
        ("create_time > yesterday", "RFC 3339"),
        ('create_time > "2026-01-01T00:00:00"', "RFC 3339"),  # no zone: refused
        ("state = ACTIVE OR state = DRAFT", "OR is not supported"),
        ("NOT state = ACTIVE", "expected a field name"),
        ("state = ACTIVE AND", "expected a comparison"),
        ("state = ACTIVE state = DRAFT", "expected AND"),
        ("(state = ACTIVE)", "expected a field name"),
        ("state ACTIVE", "expected an operator"),
        ("state =", "expected a value"),
        ("sequence = 1.5", "integer"),
    ],
)
def test_bad_filters_name_the_field_and_the_place(text: str, fragment: str) -> None:
    fields = list_filters.AUDIT_RECORDS if "sequence" in text else list_filters.PLANS
    with pytest.raises(GovexError) as caught:
        parse(text, fields)
    error = caught.value
    assert [v.field for v in error.field_violations] == ["filter"]
    description = error.field_violations[0].description
    assert fragment in description, description
    assert "at character" in description


def test_the_position_points_at_the_fault() -> None:
    with pytest.raises(GovexError) as caught:
        parse("state = ACTIVE AND colour = RED", list_filters.PLANS)
    assert "at character 20:" in caught.value.field_violations[0].description


def test_limits_on_length_and_count() -> None:
    with pytest.raises(GovexError):
        parse("state = ACTIVE AND " * 60 + "state = ACTIVE", list_filters.PLANS)
    with pytest.raises(GovexError):
        parse(" AND ".join(["state = ACTIVE"] * 21), list_filters.PLANS)


def test_matches_applies_every_condition_and_unset_times_match_none() -> None:
    conditions = parse(
        'kind = CCXT AND sandbox = true AND ccxt_id != "okx"', list_filters.EXCHANGES
    )
    item = {"kind": "CCXT", "sandbox": True, "ccxt_id": "binance", "quote_currency": "USDT"}
    assert matches(conditions, item)
    assert not matches(conditions, {**item, "sandbox": False})
    assert not matches(conditions, {**item, "ccxt_id": "okx"})
    ended = parse('end_time < "2030-01-01T00:00:00Z"', list_filters.FREEZES)
    assert not matches(ended, {"end_time": None})
