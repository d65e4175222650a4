"""The direct SQLite codecs of our column types (tables.py) give exactly what
the types give through SQLAlchemy's own processors: the hot statements
(prepared.py) write and read with them, and the rest of the code with
SQLAlchemy, on the same columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from govex_server.store.tables import Amount, UtcDateTime

DIALECT = sqlite.dialect()
zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones
)
amounts = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.adjusted()) < 40
)


def sqlalchemy_bind(column_type: Any, value: Any) -> Any:
    process = column_type._cached_bind_processor(DIALECT)
    return process(value) if process is not None else value


def sqlalchemy_result(column_type: Any, value: Any) -> Any:
    process = column_type._cached_result_processor(DIALECT, None)
    return process(value) if process is not None else value


@given(times)
def test_a_time_is_bound_and_read_back_as_sqlalchemy_does(value: datetime) -> None:
    stored = UtcDateTime.sqlite_bind(value)
    assert stored == sqlalchemy_bind(UtcDateTime(), value)
    back = UtcDateTime.sqlite_result(stored)
    assert back == sqlalchemy_result(UtcDateTime(), stored)
    assert back == value and back is not None and back.tzinfo is UTC


def test_whole_seconds_keep_their_microseconds_and_none_stays_none() -> None:
    noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert UtcDateTime.sqlite_bind(noon) == "2026-01-05 12:00:00.000000"
    assert UtcDateTime.sqlite_bind(None) is None
    assert UtcDateTime.sqlite_result(None) is None
    # A value stored without microseconds (by hand, by an older tool).
    assert UtcDateTime.sqlite_result("2026-01-05 12:00:00") == noon


def test_a_naive_time_is_refused_as_sqlalchemy_refuses_it() -> None:
    naive = datetime(2026, 1, 5, 12, 0)
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime.sqlite_bind(naive)
    with pytest.raises(ValueError, match="naive"):
        sqlalchemy_bind(UtcDateTime(), naive)


@given(amounts)
def test_an_amount_is_bound_and_read_back_as_sqlalchemy_does(value: Decimal) -> None:
    stored = Amount.sqlite_bind(value)
    assert stored == sqlalchemy_bind(Amount(), value)
    back = Amount.sqlite_result(stored)
    assert back == sqlalchemy_result(Amount(), stored)
    # Exact, with its own scale ("0.10" stays "0.10").
    assert back is not None and str(back) == str(sqlalchemy_result(Amount(), stored))


def test_an_amount_that_is_not_a_decimal_is_refused() -> None:
    with pytest.raises(TypeError, match="Decimals, not float"):
        Amount.sqlite_bind(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimals, not float"):
        sqlalchemy_bind(Amount(), 0.1)
    assert Amount.sqlite_bind(None) is None
    assert Amount.sqlite_result(None) is None
