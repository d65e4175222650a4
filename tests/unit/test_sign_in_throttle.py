"""The console's sign-in throttle: failures per address within a window."""

from __future__ import annotations

from datetime import timedelta

from govex_server.console import throttle
from govex_server.console.throttle import SignInThrottle
from govex_server.domain.clock import ManualClock


def test_an_address_waits_after_its_limit_until_the_oldest_failure_ages_out() -> None:
    clock = ManualClock()
    gate = SignInThrottle(clock, limit=3, window=timedelta(minutes=1))
    for _ in range(3):  # failures at 0, 10 and 20 s
        assert gate.wait("10.0.0.1") == timedelta(0)
        gate.failed("10.0.0.1")
        clock.advance(timedelta(seconds=10))
    # Now 30 s: refused until the first failure is a minute old.
    assert gate.wait("10.0.0.1") == timedelta(seconds=30)
    assert gate.wait("10.0.0.2") == timedelta(0)  # another address is not affected
    clock.advance(timedelta(seconds=30))
    assert gate.wait("10.0.0.1") == timedelta(0)


def test_a_success_forgets_the_failures() -> None:
    clock = ManualClock()
    gate = SignInThrottle(clock, limit=2)
    gate.failed("a")
    gate.succeeded("a")
    gate.failed("a")
    assert gate.wait("a") == timedelta(0)
    gate.failed("a")
    assert gate.wait("a") > timedelta(0)


def test_the_table_of_addresses_is_bounded() -> None:
    clock = ManualClock()
    gate = SignInThrottle(clock, limit=1)
    for n in range(throttle.MAX_ADDRESSES + 5):
        gate.failed(f"10.{n}")
    assert gate.wait("10.0") == timedelta(0)  # the oldest forgotten
    assert gate.wait(f"10.{throttle.MAX_ADDRESSES + 4}") > timedelta(0)
