"""Resting orders (issue 12 item 7): an order left open on the book is
cancelled after order_ttl_seconds and what is left of it sent again as the
next attempt at a fresh price, up to max_attempts; a leg whose limit could
never move one price step past the reference is refused before anything is
sent. Each ends with the store agreeing with the paper book."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import grpc

from govex.execution.v1 import execution_pb2
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import wait_for
from tests.integration.helpers import refused
from tests.integration.test_execution import (
    LIVE,
    SMALL,
    active,
    assert_store_matches_book,
    execute,
    get,
    orders,
    paper,
    run_days,
)

ES = execution_pb2


async def test_a_resting_remainder_is_re_priced_to_a_fill(harness: Harness) -> None:
    h = harness
    plan = await active(h, SMALL)
    paper(h).inject("partial_fill")  # the first order fills half; the rest rests
    started = await execute(h, plan, strategy=ES.EXECUTION_STRATEGY_SEQUENTIAL)

    async def resting() -> list[ES.Order]:
        return [
            o for o in await orders(h, started.name) if o.state == ES.ORDER_STATE_PARTIALLY_FILLED
        ]

    await wait_for(resting, within=30)
    [first] = await resting()
    h.clock.advance(timedelta(seconds=121))  # past order_ttl_seconds (120)

    async def re_sent() -> bool:
        mine = [
            o
            for o in await orders(h, started.name)
            if (o.leg_index, o.slice_index) == (first.leg_index, first.slice_index)
        ]
        return any(o.attempt == 1 and o.state == ES.ORDER_STATE_FILLED for o in mine)

    await wait_for(re_sent, within=30)
    slice_orders = {
        o.attempt: o
        for o in await orders(h, started.name)
        if (o.leg_index, o.slice_index) == (first.leg_index, first.slice_index)
    }
    cancelled, again = slice_orders[0], slice_orders[1]
    assert cancelled.state == ES.ORDER_STATE_CANCELLED
    assert "re-sent as attempt 1" in cancelled.state_reason
    # Only what was left is sent again, under its own client order id.
    left = Decimal(cancelled.quantity.value) - Decimal(cancelled.filled_quantity.value)
    assert Decimal(again.quantity.value) <= left
    assert again.client_order_id != cancelled.client_order_id
    ended = await run_days(h, started.name, 4)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED, ended.state_reason
    await assert_store_matches_book(h, started.name)


# The default paper account (as PaperConfig has it), as a settings file.
DEFAULT_BOOK = """
[balances]
USDT = 100000
BTC = 1
ETH = 10
[prices]
BTC = 50000
ETH = 2500
SOL = 150
"""


def paper_book(tmp_path: Path, setting: str) -> str:
    """The default paper account with one setting changed; the file's path."""
    book = tmp_path / "paper.toml"
    book.write_text(setting + "\n" + DEFAULT_BOOK)
    return str(book)


async def test_a_slice_that_rests_on_every_attempt_fails_its_leg(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    # Nothing ever fills: every order rests.
    book = paper_book(tmp_path, "fill_ratio = 0")
    h = await harness_factory(paper_exchange_file=book, max_attempts=2)
    plan = await active(h, SMALL)
    started = await execute(h, plan, strategy=ES.EXECUTION_STRATEGY_SEQUENTIAL)

    async def ended() -> bool:
        h.clock.advance(timedelta(minutes=10))  # past the TTL, and on over the days
        state = (await get(h, started.name)).state
        return state not in LIVE

    await wait_for(ended, within=60)
    final = await get(h, started.name)
    assert final.state == ES.EXECUTION_STATE_FAILED
    assert "not filled after 2 attempts of 120s" in final.state_reason
    sent = [o for o in await orders(h, started.name) if o.exchange_order_id]
    assert sent and max(o.attempt for o in sent) == 1  # max_attempts sends, no more
    assert not await paper(h).orders("gx", open_only=True)  # nothing left resting
    await assert_store_matches_book(h, started.name)


async def test_a_leg_whose_price_step_exceeds_the_slippage_is_refused(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    from tests.integration.test_validate_plan import validate

    book = paper_book(tmp_path, "price_step = 200")  # 0.4% of BTC, 8% of ETH
    h = await harness_factory(paper_exchange_file=book)
    plan = await active(h, SMALL)
    verdict = await validate(h, plan.name)
    assert not verdict.executable
    steps = [r for r in verdict.blocking_reasons if "one price step (200)" in r]
    assert any("ETH/USDT" in r for r in steps), verdict.blocking_reasons
    error = await refused(execute(h, plan))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PRICE_STEP")
    assert not await paper(h).orders("gx")  # nothing sent
