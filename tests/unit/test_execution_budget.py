"""The runner's restart waits and the day's budget: pure rules of the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govex_server.domain.execution.budget import day_cap, deferral
from govex_server.domain.execution.restarts import (
    CAP,
    HEALTHY_AFTER,
    failures_in_a_row,
    restart_delay,
)

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def test_restart_waits_double_from_one_second_to_a_minute() -> None:
    full = [restart_delay(n, 0.999999).total_seconds() for n in range(1, 9)]
    assert [round(s) for s in full] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(1, 0.0) == timedelta(seconds=0.5)  # jitter: half to all of it
    with pytest.raises(ValueError, match="failures"):
        restart_delay(0, 0.5)
    with pytest.raises(ValueError, match="jitter"):
        restart_delay(1, 1.0)


@given(st.integers(1, 10_000), st.floats(0, 0.999999))
def test_a_restart_wait_is_never_zero_nor_over_the_cap(failures: int, jitter: float) -> None:
    delay = restart_delay(failures, jitter)
    assert timedelta(seconds=0.5) <= delay <= CAP


def test_a_runner_that_ran_healthy_for_a_while_starts_its_waits_over() -> None:
    failures = 0
    for _ in range(7):  # an outage: failures at once after each restart
        failures = failures_in_a_row(failures, timedelta(seconds=2))
    assert failures == 7 and restart_delay(failures, 0.999999) > timedelta(seconds=59)
    # Then it traded for an hour; the next hiccup waits a second, not a minute.
    failures = failures_in_a_row(failures, timedelta(hours=1))
    assert failures == 1 and restart_delay(failures, 0.999999) < timedelta(seconds=1.01)
    assert failures_in_a_row(4, HEALTHY_AFTER - timedelta(seconds=1)) == 5


def test_the_days_cap_is_the_lower_of_the_start_and_now() -> None:
    value = Decimal(175_000)
    assert day_cap(value, 0.088, 0.03) == Decimal("5250.00")  # lowered at once
    assert day_cap(value, 0.03, 0.088) == Decimal("5250.00")  # never raised mid-execution


def test_an_order_over_the_days_cap_waits_for_the_next_utc_day() -> None:
    cap = Decimal(5_000)
    assert deferral(NOW, Decimal(4_000), Decimal(1_000), cap) is None
    assert deferral(NOW, Decimal(4_000), Decimal(1_050), cap) is None  # 1% for the steps
    assert deferral(NOW, Decimal(4_000), Decimal(1_051), cap) == datetime(2026, 3, 3, tzinfo=UTC)
