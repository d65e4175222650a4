"""The Timestamp of a datetime is made by arithmetic (a hot path of every
event); it must equal protobuf's own ``FromDatetime`` over the whole range a
Timestamp can hold, in any zone, to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from govex_server.api.convert import timestamp

aware = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    # Whole-minute offsets, as real zones have: protobuf drops an offset's
    # microseconds (utctimetuple), where the arithmetic keeps them.
    timezones=st.builds(
        lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60, 23 * 60)
    ),
)


@given(aware)
def test_equals_protobufs_own_conversion(value: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    assert timestamp(value) == expected


def test_before_the_epoch_nanos_stay_positive() -> None:
    value = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    assert (timestamp(value).seconds, timestamp(value).nanos) == (-1, 500_000_000)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        timestamp(datetime(2026, 1, 1))
