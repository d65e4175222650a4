"""ValidatePlan and ListExchanges on the paper account (issue 5, first part):
the dry verdict of the whole pipeline, sending nothing, writing nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc
import pytest

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import exchange_pb2, execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import freeze
from tests.integration.helpers import activate, approve, propose, refused, review
from tests.support import md, snapshot

# The paper account: 100,000 USDT, 1 BTC at 50,000, 10 ETH at 2,500 (175,000).
TARGETS = (("BTC", 20.0), ("ETH", 20.0), ("SOL", 10.0), ("USDT", 50.0))


async def active_plan(h: Harness) -> str:
    plan = await approve(h, await review(h, await propose(h, "alice", TARGETS)))
    return (await activate(h, plan)).plan.name


async def validate(h: Harness, name: str, **fields: Any) -> exe.ValidatePlanResponse:
    response: exe.ValidatePlanResponse = await h.exe.ValidatePlan(
        exe.ValidatePlanRequest(plan=name, **fields), metadata=md("victor")
    )
    return response


async def test_list_exchanges_shows_the_paper_account(harness: Harness) -> None:
    response = await harness.exe.ListExchanges(exe.ListExchangesRequest(), metadata=md("victor"))
    [paper] = response.exchanges
    assert paper.name == "exchanges/paper"
    assert paper.kind == exchange_pb2.EXCHANGE_KIND_PAPER
    assert paper.sandbox and paper.connected
    assert paper.quote_currency == "USDT"
    assert not paper.has_credentials


async def test_validate_an_active_plan(harness: Harness) -> None:
    h = harness
    name = await active_plan(h)
    await h.settle()
    before = await snapshot(h.store)
    v = await validate(h, name)
    assert v.executable, list(v.blocking_reasons)
    legs = {leg.asset: leg for leg in v.legs}
    # BTC 50,000 -> 35,000 (sell 15,000); ETH 25,000 -> 35,000; SOL 0 -> 17,500.
    assert legs["BTC"].side == execution_pb2.ORDER_SIDE_SELL
    assert legs["BTC"].notional.value == "15000"  # exact, on the wire as on the books
    assert legs["BTC"].operation == freeze_pb2.OPERATION_SELL_TO_STABLES
    assert legs["SOL"].operation == freeze_pb2.OPERATION_PURCHASE
    assert v.legs[0].side == execution_pb2.ORDER_SIDE_SELL  # sells first
    # No signals: SLOW, cap 3% of 175,000 = 5,250 a day, ramp 48h.
    assert v.policy.cap_daily_percent == pytest.approx(3)
    per_day: dict[int, Decimal] = {}
    for s in v.schedule:
        per_day[s.day] = per_day.get(s.day, Decimal(0)) + Decimal(s.notional.value)
    assert max(per_day.values()) <= 5_250
    assert sum(per_day.values()) == 42_500  # the slices add up to the legs exactly
    assert v.days == len(per_day) == 9  # 42,500 to trade
    assert len(v.orders) == len(v.schedule)
    assert all(o.safety.passed and o.safety.score >= 70 for o in v.orders)
    assert {fv.operation for fv in v.freeze_verdicts} == {
        freeze_pb2.OPERATION_SELL_TO_STABLES,
        freeze_pb2.OPERATION_PURCHASE,
        freeze_pb2.OPERATION_REBALANCING,
    }
    assert await snapshot(h.store) == before  # nothing written


async def test_a_freeze_and_a_non_active_plan_block_with_reasons(harness: Harness) -> None:
    h = harness
    name = await active_plan(h)
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE)
    await h.settle()
    v = await validate(h, name)
    assert not v.executable
    text = " | ".join(v.blocking_reasons)
    assert "PURCHASE is forbidden" in text
    assert "FREEZE" in text  # the policy mode under the freeze
    sell = next(
        fv for fv in v.freeze_verdicts if fv.operation == freeze_pb2.OPERATION_SELL_TO_STABLES
    )
    assert sell.allowed  # S3 lets sells to stables through
    draft = await propose(h, "alice", TARGETS)
    v = await validate(h, draft.name)
    assert any("only the ACTIVE plan" in r for r in v.blocking_reasons)


async def test_strict_level_refuses_what_moderate_passes(
    harness_factory: HarnessFactory,
) -> None:
    # Limit prices sit 38 bps from the reference (no signals: SLOW, 30 + 50 x
    # 0.15 bps); a 60 bps collar warns above 30 bps without refusing.
    h = await harness_factory(price_collar_bps=60)
    name = await active_plan(h)
    moderate = await validate(h, name, safety_level=execution_pb2.SAFETY_LEVEL_MODERATE)
    strict = await validate(h, name, safety_level=execution_pb2.SAFETY_LEVEL_STRICT)
    permissive = await validate(h, name, safety_level=execution_pb2.SAFETY_LEVEL_PERMISSIVE)
    assert moderate.executable
    assert all(o.safety.passed and o.safety.score == 90 for o in moderate.orders)
    assert {i.rule for o in moderate.orders for i in o.safety.issues} == {"PRICE_COLLAR"}
    assert not strict.executable
    assert not any(o.safety.passed for o in strict.orders)
    assert all(o.safety.score == 100 and not o.safety.issues for o in permissive.orders)


async def test_bad_validate_requests(harness: Harness) -> None:
    h = harness
    name = await active_plan(h)
    unknown_exchange = await refused(validate(h, name, exchange="exchanges/kraken"))
    assert unknown_exchange.code == grpc.StatusCode.NOT_FOUND
    malformed = await refused(validate(h, name, exchange="kraken"))
    assert (malformed.code, malformed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["exchange"])
    bad_plan = await refused(validate(h, "plan/1"))
    assert (bad_plan.code, bad_plan.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["plan"])
    bad_level = await refused(validate(h, name, safety_level=9))
    assert bad_level.fields == ["safety_level"]


class Unreachable:
    """An account whose exchange cannot be reached."""

    account = "down"
    kind = "ccxt"
    sandbox = True
    quote = "USDT"
    reachable = False
    accept_window = 5.0

    async def balances(self) -> Any:
        from govex_server.exchanges.errors import ExchangeUnavailable

        raise ExchangeUnavailable("connection refused")


async def test_an_unreachable_exchange_is_unavailable(harness: Harness) -> None:
    h = harness
    name = await active_plan(h)
    assert h.running is not None
    h.running.exchanges.put(Unreachable())  # type: ignore[arg-type]
    error = await refused(validate(h, name, exchange="exchanges/down"))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "EXCHANGE_UNAVAILABLE")
    assert error.retry_delay is not None
    listed = await h.exe.ListExchanges(exe.ListExchangesRequest(), metadata=md("victor"))
    down = next(e for e in listed.exchanges if e.name == "exchanges/down")
    assert (down.connected, down.health) == (False, exchange_pb2.EXCHANGE_HEALTH_UNAVAILABLE)


async def test_validate_allocation_and_validate_plan_agree_on_the_days(harness: Harness) -> None:
    from google.type.decimal_pb2 import Decimal as DecimalPb

    from govex.governance.v1 import governance_service_pb2 as gov
    from tests.integration.test_execution import BIG, active

    h = harness
    plan = await active(h, BIG)
    verdict = await validate(h, plan.name)
    # The same move as weights: what the paper account holds, to the plan.
    legs = {leg.asset: leg.current_percent for leg in verdict.legs if leg.current_percent}
    usdt = 100 - sum(legs.values())
    request = gov.ValidateAllocationRequest(
        portfolio_value_usd=DecimalPb(value=str(Decimal(175_000)))
    )
    for asset, weight in (*legs.items(), ("USDT", usdt)):
        request.current.add(asset=asset, weight_percent=weight)
    for asset, weight in BIG:
        request.target.add(asset=asset, weight_percent=weight)
    allocation = await h.gov.ValidateAllocation(request, metadata=md("victor"))
    assert verdict.days == 9  # 42,500 traded at 5,250 a day
    assert allocation.days_at_cap == verdict.days
