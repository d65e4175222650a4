"""Signals and policy through gRPC: publish, read, restart, time passing,
full_ai bounds and auto-advance, allocation checks."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.type.decimal_pb2 import Decimal as DecimalPb

from govex.controls.v1 import freeze_pb2, policy_pb2
from govex.governance.v1 import events_pb2, plan_pb2, signals_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.api.state_frame import REUSE_FOR
from tests.conftest import Harness
from tests.integration.freeze_helpers import event_of, freeze
from tests.integration.helpers import activate, approved_plan, refused
from tests.integration.test_plan_api import set_mode
from tests.support import md, snapshot

SP = signals_pb2


def signal_set(h: Harness, minutes_old: float = 1, **values: Any) -> signals_pb2.SignalSet:
    as_of = timestamp_pb2.Timestamp()
    as_of.FromDatetime(h.clock.now() - timedelta(minutes=minutes_old))
    phase = values.pop("phase_inputs", {})
    vols = values.pop("volatility", {})
    message = SP.SignalSet(as_of=as_of, source="model-7 v3", **values)
    for asset, vol in vols.items():
        message.volatility.add(asset=asset, volatility=vol)
    for name, value in phase.items():
        setattr(message.phase_inputs, name, value)
    return message


async def publish(h: Harness, message: signals_pb2.SignalSet, who: str = "model-7") -> Any:
    return await h.gov.PublishSignals(gov.PublishSignalsRequest(signals=message), metadata=md(who))


async def state(h: Harness) -> Any:
    return (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state


CONFIDENT = {"confidence": 0.9, "contradiction_index": 0.1, "blended_score": 80}


async def test_publish_returns_the_policy_and_state_shows_it(harness: Harness) -> None:
    h = harness
    before = await state(h)
    assert before.signals_freshness == SP.SIGNAL_FRESHNESS_NONE
    assert before.policy.mode == policy_pb2.POLICY_MODE_SLOW
    assert list(before.policy.explanation) == [
        "step 1: no signals: SLOW, cap 3.00%, ramp 48h",
        "step 9: no volatility given: 0.15 assumed",
        "step 9: no-trade zone 1.75%, cost 30 bps (volatility 0.15)",
        "step 10: slippage limit 38 bps (SLOW 30 + 50 x 0.15), minimum trade 100.0",
    ]
    response = await publish(
        h,
        signal_set(
            h, volatility={"BTC": 0.5, "ETH": 0.7}, phase_inputs={"rs_eth_7d": 1.2}, **CONFIDENT
        ),
    )
    assert response.policy.mode == policy_pb2.POLICY_MODE_AGGRESSIVE
    assert response.policy.cap_daily_percent == pytest.approx(8.8)  # smoothed from 8% to 12%
    assert response.freshness == SP.SIGNAL_FRESHNESS_FRESH
    assert response.phase.current == SP.PHASE_ETH
    assert response.signals.publisher == "model-7"
    after = await state(h)
    assert after.policy == response.policy
    assert any("AGGRESSIVE" in line for line in after.policy.explanation)
    assert after.signals_age.ToTimedelta() == timedelta(minutes=1)
    assert after.phase.current == SP.PHASE_ETH
    assert after.etag != before.etag
    got = await h.gov.GetSignals(gov.GetSignalsRequest(), metadata=md("victor"))
    assert got.signals == response.signals
    assert got.freshness == SP.SIGNAL_FRESHNESS_FRESH


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "confidence_above_1": ({"confidence": 1.2}, "signals.confidence"),
    "nan": ({"contradiction_index": math.nan}, "signals.contradiction_index"),
    "infinity": ({"blended_score": math.inf}, "signals.blended_score"),
    "regime_not_summing_to_1": (
        {"regime": SP.RegimeProbabilities(bull=0.5, neutral=0.4, bear=0.3)},
        "signals.regime",
    ),
    "negative_volatility": ({"volatility": {"BTC": -0.2}}, "signals.volatility[0].volatility"),
    "future_as_of": ({"minutes_old": -10}, "signals.as_of"),
    "breadth_out_of_range": ({"phase_inputs": {"breadth": 1.5}}, "signals.phase_inputs.breadth"),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_signals_are_refused_and_nothing_changes(harness: Harness, case: str) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=5, **CONFIDENT))
    await h.settle()
    values, field = BAD[case]
    values = dict(values)
    minutes_old = values.pop("minutes_old", 1)
    before = await snapshot(h.store)
    error = await refused(publish(h, signal_set(h, minutes_old, **values)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.fields, error.field_violations
    assert await snapshot(h.store) == before


async def test_older_set_missing_as_of_and_missing_role_are_refused(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=1, **CONFIDENT))
    await h.settle()
    before = await snapshot(h.store)
    older = await refused(publish(h, signal_set(h, minutes_old=10, **CONFIDENT)))
    assert "signals.as_of" in older.fields
    no_as_of = await refused(publish(h, SP.SignalSet(confidence=0.5)))
    assert "signals.as_of" in no_as_of.fields
    no_set = await refused(
        h.gov.PublishSignals(gov.PublishSignalsRequest(), metadata=md("model-7"))
    )
    assert "signals" in no_set.fields
    no_role = await refused(publish(h, signal_set(h, **CONFIDENT), who="carol"))
    assert (no_role.code, no_role.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    assert await snapshot(h.store) == before


async def test_policy_and_phase_state_survive_a_restart(harness: Harness) -> None:
    h = harness
    for minutes in (40, 25, 10):
        h.clock.advance(timedelta(minutes=15))
        await publish(
            h,
            signal_set(
                h,
                minutes_old=0,
                phase_inputs={"rs_alt_7d": 1.2},
                contradiction_index=0.5,
                confidence=0.7,
            ),
        )
        del minutes
    await h.settle()
    before = await state(h)
    _, policy_before, phase_before = await h.store.read(lambda uow: uow.policy.get())
    await h.restart()
    after = await state(h)
    _, policy_after, phase_after = await h.store.read(lambda uow: uow.policy.get())
    assert (policy_after, phase_after) == (policy_before, phase_before)
    assert after.policy == before.policy
    assert after.phase == before.phase
    assert policy_after.prudent  # the prudent state was kept


async def test_policy_changed_reaches_subscribers_when_signals_go_stale(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    call = h.gov.WatchGovernanceEvents(
        gov.WatchGovernanceEventsRequest(
            kinds=[
                events_pb2.EVENT_KIND_POLICY_CHANGED,
                events_pb2.EVENT_KIND_SIGNALS_FRESHNESS_CHANGED,
            ]
        ),
        metadata=md("victor"),
    )
    first: Any = await asyncio.wait_for(call.read(), 5)  # the starting heartbeat
    assert first.WhichOneof("message") == "heartbeat"
    h.clock.advance(timedelta(minutes=61))  # no request: only time passes
    kinds: set[int] = set()
    while len(kinds) < 2:
        message = await asyncio.wait_for(call.read(), 5)
        event = event_of(message)
        if event is not None:
            kinds.add(event.kind)
            if event.kind == events_pb2.EVENT_KIND_POLICY_CHANGED:
                assert event.policy.cap_daily_percent <= 8
                assert any("STALE" in line for line in event.policy.explanation)
            else:
                assert event.freshness == SP.SIGNAL_FRESHNESS_STALE
    call.cancel()
    assert (await state(h)).signals_freshness == SP.SIGNAL_FRESHNESS_STALE


async def test_a_freeze_moves_the_policy_without_a_request(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, minutes=30)
    await h.settle()
    frozen = (await state(h)).policy
    assert frozen.mode == policy_pb2.POLICY_MODE_FREEZE
    assert frozen.cap_daily_percent <= 3
    assert frozen.ramp_hours <= 6
    h.clock.advance(timedelta(minutes=31))  # the freeze expires
    await asyncio.sleep(0.3)
    await h.settle()
    assert (await state(h)).policy.mode != policy_pb2.POLICY_MODE_FREEZE


async def ai_proposal(h: Harness, weights: dict[str, float]) -> gov.ProposePlanResponse:
    request = gov.ProposePlanRequest(reason="model rebalance", auto_advance=True)
    for asset, weight in weights.items():
        request.targets.add(asset=asset, weight_percent=weight)
    response: gov.ProposePlanResponse = await h.gov.ProposePlan(request, metadata=md("model-7"))
    return response


async def test_auto_advance_stops_at_the_first_failing_bound(harness: Harness) -> None:
    h = harness
    await set_mode(h, plan_pb2.GOVERNANCE_MODE_FULL_AI)
    # An active plan (published by humans) starts the cooldown.
    active = (await activate(h, await approved_plan(h))).plan
    base = {t.asset: t.weight_percent for t in active.targets}  # BTC 50, ETH 20, USDT 30
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    # Within the daily cap (8.8%): review and approve pass, activation hits the cooldown.
    small = await ai_proposal(h, {**base, "BTC": 46, "USDT": 34})
    assert list(small.auto_advance.steps_taken) == ["review", "approve"]
    assert small.auto_advance.stopped_at == plan_pb2.PLAN_STATE_APPROVED
    assert "COOLDOWN" in small.auto_advance.stop_reason
    audit = await h.store.read(lambda uow: uow.audit.for_resource(small.plan.name))
    assert [(r.rpc, r.principal, r.principal_kind, r.mode) for r in audit] == [
        ("ProposePlan", "model-7", "ai", "FULL_AI"),
        ("ReviewPlan", "model-7", "ai", "FULL_AI"),
        ("ApprovePlan", "model-7", "ai", "FULL_AI"),
    ]
    # Beyond the daily cap: stopped before the first step.
    big = await ai_proposal(h, {"BTC": 20, "ETH": 20, "USDT": 60})
    assert list(big.auto_advance.steps_taken) == []
    assert big.auto_advance.stopped_at == plan_pb2.PLAN_STATE_DRAFT
    assert "turnover_within_cap" in big.auto_advance.stop_reason
    # Under a freeze: the freeze bound fails first.
    await freeze(h, freeze_pb2.FREEZE_TYPE_ERROR_FREEZE)
    await h.settle()
    frozen = await ai_proposal(h, {**base, "BTC": 48, "USDT": 32})
    assert "no_freeze" in frozen.auto_advance.stop_reason


async def test_auto_advance_reaches_active_when_every_bound_holds(harness: Harness) -> None:
    h = harness
    await set_mode(h, plan_pb2.GOVERNANCE_MODE_FULL_AI)
    active = (await activate(h, await approved_plan(h))).plan
    base = {t.asset: t.weight_percent for t in active.targets}
    h.clock.advance(timedelta(hours=25))  # past the cooldown
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    result = await ai_proposal(h, {**base, "BTC": 45, "USDT": 35})
    assert list(result.auto_advance.steps_taken) == ["review", "approve", "activate"]
    assert result.plan.state == plan_pb2.PLAN_STATE_ACTIVE
    assert result.auto_advance.stop_reason == ""


async def test_auto_advance_is_refused_outside_full_ai(harness: Harness) -> None:
    h = harness
    await set_mode(h, plan_pb2.GOVERNANCE_MODE_AI_ASSISTED)
    before = await snapshot(h.store)
    error = await refused(ai_proposal(h, {"BTC": 100}))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODE_FORBIDS")
    assert await snapshot(h.store) == before


async def test_validate_allocation(harness: Harness) -> None:
    h = harness
    request = gov.ValidateAllocationRequest(portfolio_value_usd=DecimalPb(value="1000000"))
    for asset, weight in (("BTC", 50), ("USDT", 50)):
        request.current.add(asset=asset, weight_percent=weight)
    for asset, weight in (("BTC", 70), ("USDT", 30)):
        request.target.add(asset=asset, weight_percent=weight)
    response = await h.gov.ValidateAllocation(request, metadata=md("victor"))
    assert response.recommendation == 3  # REVIEW: 20% at the no-signal cap of 3%
    assert response.days_at_cap == 7
    assert response.turnover_percent == pytest.approx(20)
    # 6 bps of 1,000,000, in exact money rounded to the cent.
    assert response.estimated_cost_bps == pytest.approx(6)
    assert response.estimated_cost_usd.value == "600.00"
    assert [c.asset for c in response.changes] == ["BTC", "USDT"]
    assert response.reasons
    for bad in ("abc", "1e400", "NaN", "", "-5"):
        request.portfolio_value_usd.value = bad
        error = await refused(h.gov.ValidateAllocation(request, metadata=md("victor")))
        field = "portfolio_value_usd" if bad == "-5" else "portfolio_value_usd.value"
        assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field]), bad
    request.portfolio_value_usd.value = "1000000"
    request.target[0].weight_percent = 60
    error = await refused(h.gov.ValidateAllocation(request, metadata=md("victor")))
    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["target"])


async def test_a_state_read_is_answered_again_only_briefly_and_never_after_a_change(
    harness: Harness,
) -> None:
    """On SQLite a read within REUSE_FOR of the last one, with nothing
    changed, gets that read's frame (its read_time); a later read, and the
    first read after a change, are read anew. On PostgreSQL every read is
    anew: another replica may have written."""
    h = harness
    assert h.running is not None
    await state(h)  # the caches hold the facts and the policy from here on
    h.clock.advance(REUSE_FOR)
    first = await state(h)
    h.clock.advance(REUSE_FOR / 2)
    again = await state(h)
    reused = h.running.store.is_sqlite
    elapsed = again.read_time.ToDatetime() - first.read_time.ToDatetime()
    assert elapsed == (timedelta(0) if reused else REUSE_FOR / 2)
    h.clock.advance(REUSE_FOR / 2)
    later = await state(h)
    assert later.read_time.ToDatetime() - first.read_time.ToDatetime() == REUSE_FOR
    # No time passes: a freeze created now is in the very next read.
    frozen = await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE)
    changed = await state(h)
    assert [f.name for f in changed.active_freezes] == [frozen.name]
    assert changed.etag != later.etag


async def test_state_read_twice_differs_only_in_its_clock_fields(harness: Harness) -> None:
    """GetGovernanceState is served from a snapshot serialized once per change:
    between changes only read_time, the cooldown and the signals' age move,
    and a change (a freeze) is in the very next read."""
    h = harness
    await publish(h, signal_set(h))
    first = await state(h)
    h.clock.advance(timedelta(minutes=3))
    second = await state(h)
    assert second.read_time.ToDatetime() - first.read_time.ToDatetime() == timedelta(minutes=3)
    assert second.signals_age.ToTimedelta() - first.signals_age.ToTimedelta() == timedelta(
        minutes=3
    )
    assert second.etag == first.etag
    for moving in ("read_time", "signals_age", "cooldown"):
        first.ClearField(moving)
        second.ClearField(moving)
    assert second == first
    frozen = await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE)
    third = await state(h)
    assert third.etag != first.etag
    assert [f.name for f in third.active_freezes] == [frozen.name]
