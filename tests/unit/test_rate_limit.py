"""The order-rate limiter on the test clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from govex_server.domain.clock import ManualClock
from govex_server.exchanges.rate_limit import OrderRateLimiter


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_40_orders_per_10_seconds() -> None:
    clock = ManualClock()
    limiter = OrderRateLimiter(clock, 40, timedelta(seconds=10))
    for _ in range(40):
        await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.budget().remaining == 0
    waiting = asyncio.create_task(limiter.acquire())
    await settle()
    assert not waiting.done()
    clock.advance(timedelta(seconds=9))
    await settle()
    assert not waiting.done()
    clock.advance(timedelta(seconds=1))
    await asyncio.wait_for(waiting, 1)
    # The first 40 left the window together; the 41st is the only one in it.
    assert limiter.budget().remaining == 39


async def test_a_released_send_gives_its_place_back() -> None:
    clock = ManualClock()
    limiter = OrderRateLimiter(clock, 2, timedelta(seconds=10))
    await asyncio.wait_for(limiter.acquire(), 1)
    await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.budget().remaining == 0
    limiter.release()  # the second order was deferred, never sent
    assert limiter.budget().remaining == 1
    await asyncio.wait_for(limiter.acquire(), 1)  # no wait for the window


async def test_retry_after_blocks_every_send_until_it_passes() -> None:
    clock = ManualClock()
    limiter = OrderRateLimiter(clock, 40, timedelta(seconds=10))
    limiter.retry_after(30)
    assert limiter.budget().blocked_until == clock.now() + timedelta(seconds=30)
    waiting = asyncio.create_task(limiter.acquire())
    await settle()
    clock.advance(timedelta(seconds=29))
    await settle()
    assert not waiting.done()
    clock.advance(timedelta(seconds=1))
    await asyncio.wait_for(waiting, 1)
    assert limiter.budget().blocked_until is None
    limiter.retry_after(5)
    limiter.retry_after(2)  # a shorter wait never shortens a longer one
    assert limiter.budget().blocked_until == clock.now() + timedelta(seconds=5)


def test_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        OrderRateLimiter(ManualClock(), 0, timedelta(seconds=10))
