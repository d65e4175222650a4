"""Executions a desk can trust (first part of the engine rebuild): a runner
that an exchange error stops is restarted with backoff, never left dead; a
refused cancel is retried with backoff; activation waits for the running
execution; S3 during a rebalancing stops every remaining leg; a lowered cap
lowers the day's budget at once; an ai principal cancels only its own plans.
Each ends, where orders were sent, with the store agreeing with the book."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import freeze, wait_for
from tests.integration.helpers import activate, approve, propose, refused, review
from tests.integration.test_execution import (
    BIG,
    SMALL,
    active,
    assert_store_matches_book,
    execute,
    get,
    idle,
    orders,
    paper,
    run_days,
)
from tests.support import md

ES = execution_pb2


def restarts(h: Harness) -> int:
    assert h.running is not None
    return h.running.engine.restarts


@pytest.mark.parametrize(
    ("read", "times"),
    [
        ("prices", 1),
        ("prices", 10),
        ("markets", 1),
        ("markets", 10),
        ("balances", 1),
        ("balances", 10),
    ],
)
async def test_an_exchange_read_failing_restarts_the_runner(
    harness: Harness, read: str, times: int
) -> None:
    h = harness
    plan = await active(h, SMALL)  # 2 days under the 3% cap
    started = await execute(h, plan)
    await idle(h, started.name)  # day 0 sent; the faults meet the next round
    paper(h).inject(f"{read}_unavailable", times)
    h.clock.advance(timedelta(days=1))  # the next day's slices are due

    async def restarted() -> bool:
        h.clock.advance(timedelta(seconds=30))  # the backoff runs on the clock
        # The last error is on the execution, for the operator.
        noted = f"restart {times} after" in (await get(h, started.name)).state_reason
        return restarts(h) >= times and noted

    await wait_for(restarted, within=30)
    during = await get(h, started.name)
    assert during.state == ES.EXECUTION_STATE_RUNNING
    assert f"({read})" in during.state_reason
    ended = await run_days(h, started.name, 4)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED, ended.state_reason
    assert restarts(h) >= times  # the supervisor, not a server restart, brought it back
    await assert_store_matches_book(h, started.name)


async def test_a_refused_cancel_is_retried_with_backoff_until_it_goes(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    paper(h).inject("partial_fill")  # an order rests open on the book
    started = await execute(h, plan)
    await wait_for(lambda: _has_open(h, started.name), within=10)
    paper(h).inject("cancel_refused", 5)
    await freeze(h, freeze_pb2.FREEZE_TYPE_FULL_FREEZE)

    async def ended() -> bool:
        h.clock.advance(timedelta(seconds=5))  # the backoff runs on the clock
        return (await get(h, started.name)).state == ES.EXECUTION_STATE_CANCELLED

    await wait_for(ended, within=30)
    assert paper(h).cancels_refused == 5
    # Each refusal cost one restart's wait, not a tight loop of calls.
    assert 1 <= restarts(h) <= 5
    assert not await paper(h).orders("gx", open_only=True)
    await assert_store_matches_book(h, started.name)


async def _has_open(h: Harness, name: str) -> bool:
    return any(o.state == ES.ORDER_STATE_PARTIALLY_FILLED for o in await orders(h, name))


async def test_activation_is_refused_while_the_active_plan_executes(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    started = await execute(h, plan)
    h.clock.advance(timedelta(hours=25))  # past the publication cooldown
    successor = await approve(h, await review(h, await propose(h, "alice", SMALL)))
    error = await refused(activate(h, successor))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "EXECUTION_RUNNING")
    assert started.name in error.message
    got = await h.gov.GetPlan(gov.GetPlanRequest(name=plan.name), metadata=md("victor"))
    assert got.plan.state == plan_pb2.PLAN_STATE_ACTIVE  # nothing superseded


async def test_s3_mid_rebalancing_stops_every_remaining_leg(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)  # 9 days under the 3% cap
    started = await execute(h, plan, strategy=ES.EXECUTION_STRATEGY_SEQUENTIAL)
    await idle(h, started.name)
    filled_before = {
        o.name for o in await orders(h, started.name) if o.filled_quantity.value != "0"
    }
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, minutes=60 * 24 * 7)
    for _ in range(6):  # six days under the freeze
        h.clock.advance(timedelta(days=1))
        await idle(h, started.name)
    now = await orders(h, started.name)
    assert {o.name for o in now if o.filled_quantity.value != "0"} == filled_before
    after = [o for o in now if o.state == ES.ORDER_STATE_CANCELLED]
    # Sells are part of the rebalancing too: S3 forbids rebalancing.
    assert {o.side for o in after} == {ES.ORDER_SIDE_SELL, ES.ORDER_SIDE_BUY}
    assert all("S3_ALERT_FREEZE" in o.state_reason for o in after)
    await assert_store_matches_book(h, started.name)


async def test_a_cap_lowered_mid_day_lowers_the_days_budget(harness: Harness) -> None:
    from sqlalchemy import select

    from govex_server.store import tables as t
    from tests.integration.test_policy_api import CONFIDENT, publish, signal_set

    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))  # AGGRESSIVE, cap 8.8%
    await h.settle()
    # Everything to stables: 75,000 of sells, 15,400 a day at the start's cap.
    plan = await active(h, (("USDT", 100.0),))
    started = await execute(h, plan)
    # S3 lets sells to stables go on and lowers the cap to 3% (5,250 a day)
    # before the day's later slices: no day trades more from then on.
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, minutes=60 * 24 * 7)
    for _ in range(6):
        h.clock.advance(timedelta(days=1))
        await idle(h, started.name)
    query = select(t.daily_notional.c.day, t.daily_notional.c.notional)
    rows = await h.store.read(lambda uow: uow.conn.execute(query).all())
    assert len(rows) >= 5
    assert all(float(n) <= 175_000 * 0.03 * 1.01 for _, n in rows), rows
    await assert_store_matches_book(h, started.name)


async def test_an_ai_cancels_only_its_own_plans_and_none_in_manual(harness: Harness) -> None:
    h = harness
    humans = await approve(h, await review(h, await propose(h, "alice", SMALL)))
    await _set_mode(h, plan_pb2.GOVERNANCE_MODE_AI_ASSISTED)
    own = await propose(h, "model-7", SMALL)
    for mode, reason in (
        (plan_pb2.GOVERNANCE_MODE_AI_ASSISTED, "NOT_PROPOSER"),
        (plan_pb2.GOVERNANCE_MODE_MANUAL, "MODE_FORBIDS"),
    ):
        await _set_mode(h, mode)
        error = await refused(_cancel(h, humans, "model-7"))
        assert error.reason == reason, (mode, error.reason)
    got = await h.gov.GetPlan(gov.GetPlanRequest(name=humans.name), metadata=md("victor"))
    assert got.plan.state == plan_pb2.PLAN_STATE_APPROVED
    # In MANUAL not even its own; outside it, its own.
    assert (await refused(_cancel(h, own, "model-7"))).reason == "MODE_FORBIDS"
    await _set_mode(h, plan_pb2.GOVERNANCE_MODE_AI_ASSISTED)
    cancelled = await _cancel(h, own, "model-7")
    assert cancelled.plan.state == plan_pb2.PLAN_STATE_CANCELLED


async def _cancel(h: Harness, plan: plan_pb2.Plan, who: str) -> gov.CancelPlanResponse:
    response: gov.CancelPlanResponse = await h.gov.CancelPlan(
        gov.CancelPlanRequest(name=plan.name, etag=plan.etag, reason="not needed"),
        metadata=md(who),
    )
    return response


async def _set_mode(h: Harness, mode: plan_pb2.GovernanceMode.ValueType) -> None:
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    if state.mode == mode:
        return
    await h.gov.SetGovernanceMode(
        gov.SetGovernanceModeRequest(mode=mode, etag=state.mode_etag, reason="test"),
        metadata=md("dana"),
    )


SMALL_BOOK = """
[balances]
USDT = 1000
BTC = 0.01
[prices]
BTC = 50000
"""


async def test_a_schedule_too_long_is_a_precondition_with_its_length(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    from tests.integration.test_validate_plan import validate

    book = tmp_path / "paper.toml"
    book.write_text(SMALL_BOOK)
    # 1,500 in all: no signals, 3% = 45 a day, under the 100 minimum trade.
    h = await harness_factory(paper_exchange_file=str(book), max_execution_days=5)
    plan = await active(h, (("BTC", 90.0), ("USDT", 10.0)))
    never = await refused(validate(h, plan.name))
    assert (never.code, never.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SCHEDULE_TOO_LONG")
    assert "never end" in never.message and "45.00" in never.message
    error = await refused(execute(h, plan))
    assert error.reason == "SCHEDULE_TOO_LONG"


async def test_a_long_schedule_says_how_many_days(harness_factory: HarnessFactory) -> None:
    from tests.integration.test_validate_plan import validate

    h = await harness_factory(max_execution_days=3)
    plan = await active(h, BIG)  # 42,500 at 5,250 a day: 9 days
    error = await refused(validate(h, plan.name))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SCHEDULE_TOO_LONG")
    assert "about 9 days" in error.message, error.message


async def test_a_target_the_account_cannot_reach_blocks_the_plan(harness: Harness) -> None:
    from tests.integration.test_validate_plan import validate

    h = harness
    # The paper account trades against USDT only: USDC can never be bought.
    plan = await active(h, (("BTC", 28.57), ("ETH", 14.29), ("USDC", 10.0), ("USDT", 47.14)))
    verdict = await validate(h, plan.name)
    assert not verdict.executable
    assert any(r.startswith("USDC: a stable other than") for r in verdict.blocking_reasons)
    error = await refused(execute(h, plan))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TARGET_UNREACHABLE")
    got = await h.gov.GetPlan(gov.GetPlanRequest(name=plan.name), metadata=md("victor"))
    assert got.plan.state == plan_pb2.PLAN_STATE_ACTIVE  # never called EXECUTED


async def test_validate_counts_what_was_traded_today(harness: Harness) -> None:
    from tests.integration.test_validate_plan import validate

    h = harness
    plan = await active(h, BIG)  # no signals: 3% = 5,250 a day
    started = await execute(h, plan)
    h.clock.advance(timedelta(hours=11))  # still the first UTC day: its slices are all due
    await idle(h, started.name)
    verdict = await validate(h, plan.name)
    # Today's cap is used: what is left of the plan starts tomorrow, as the
    # engine would send it.
    assert verdict.schedule
    assert min(s.day for s in verdict.schedule) == 1, [s.day for s in verdict.schedule][:5]
