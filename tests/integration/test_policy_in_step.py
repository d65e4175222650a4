"""The policy in step with freezes, through the API: a read after the Freeze
response sees the freeze and the policy it clamps (on this replica and on
another); mode FREEZE refuses only executions that buy risk; hedge targets
trade as HEDGE legs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from govex.controls.v1 import freeze_pb2, policy_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import freeze, unfreeze
from tests.integration.helpers import activate, approve, propose, refused, review
from tests.integration.test_policy_api import publish as publish_set
from tests.integration.test_policy_api import signal_set
from tests.integration.test_validate_plan import validate
from tests.support import md

FT = freeze_pb2


async def publish(h: Harness) -> None:
    await publish_set(h, signal_set(h, minutes_old=0, confidence=0.9, contradiction_index=0.1))


async def state(h: Harness) -> Any:
    response = await h.gov.GetGovernanceState(
        gov.GetGovernanceStateRequest(), metadata=md("victor")
    )
    return response.state


async def test_a_read_after_freeze_sees_the_clamped_policy(harness: Harness) -> None:
    h = harness
    await publish(h)
    before = (await state(h)).policy
    assert before.cap_daily_percent == pytest.approx(8.8)  # smoothed from 8% towards 12%
    for _ in range(5):
        made = await freeze(h, FT.FREEZE_TYPE_S3_ALERT_FREEZE)
        # No settling: the response's transaction held the policy too.
        during = await state(h)
        assert [f.name for f in during.active_freezes] == [made.name]
        assert during.policy.mode == policy_pb2.POLICY_MODE_FREEZE
        assert during.policy.cap_daily_percent == pytest.approx(3)
        assert during.policy.ramp_hours == pytest.approx(6)
        await unfreeze(h, made.name)
        after = (await state(h)).policy
        # Freezes that come and go never smooth the cap again.
        assert after.cap_daily_percent == pytest.approx(before.cap_daily_percent)
        assert after.mode == before.mode


@pytest.mark.postgres
async def test_the_other_replica_sees_the_freeze_and_its_policy(
    harness_factory: HarnessFactory, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    a = await harness_factory()
    b = await harness_factory()
    assert b.running is not None and b.running.listener is not None
    await asyncio.wait_for(b.running.listener.connected.wait(), 5)
    await publish(a)
    # A's notifications reach B later than B's next read (here: never), the
    # worst case of the race: B must still serve what A committed.
    b.running.listener._on_change = lambda: None
    # B reads (and caches) the policy before each freeze.
    for _ in range(5):
        assert not (await state(b)).active_freezes
        made = await freeze(a, FT.FREEZE_TYPE_S3_ALERT_FREEZE)
        seen = await state(b)  # at once: no waiting for A's notification
        assert [f.name for f in seen.active_freezes] == [made.name]
        assert seen.policy.mode == policy_pb2.POLICY_MODE_FREEZE
        assert seen.policy.cap_daily_percent == pytest.approx(3)
        await unfreeze(a, made.name)
        assert (await state(b)).policy.cap_daily_percent == pytest.approx(8.8)


# The paper account: 100,000 USDT, 1 BTC at 50,000, 10 ETH at 2,500 (175,000):
# 57.14% stables, BTC 28.57%, ETH 14.29%.
ROTATION = (("BTC", 20.0), ("ETH", 22.86), ("USDT", 57.14))
PURCHASE = (("BTC", 28.57), ("ETH", 14.29), ("SOL", 10.0), ("USDT", 47.14))


async def active(h: Harness, targets: tuple[tuple[str, float], ...]) -> Any:
    plan = await approve(h, await review(h, await propose(h, "alice", targets)))
    return (await activate(h, plan)).plan


async def test_mode_freeze_refuses_only_what_buys_risk(harness: Harness) -> None:
    h = harness
    await freeze(h, FT.FREEZE_TYPE_S3_ALERT_FREEZE, minutes=3 * 24 * 60)
    check = await h.gov.CheckOperation(
        gov.CheckOperationRequest(operation=FT.OPERATION_ROTATION), metadata=md("victor")
    )
    assert check.verdict.allowed
    rotation = await validate(h, (await active(h, ROTATION)).name)
    assert rotation.policy.mode == policy_pb2.POLICY_MODE_FREEZE
    assert {leg.operation for leg in rotation.legs} == {FT.OPERATION_ROTATION}
    assert rotation.executable, list(rotation.blocking_reasons)
    h.clock.advance(timedelta(hours=25))  # the publication cooldown
    plan = await active(h, PURCHASE)
    purchase = await validate(h, plan.name)
    assert not purchase.executable
    assert any(
        "policy mode is FREEZE: no execution that buys risk starts" in r and "BUY SOL/USDT" in r
        for r in purchase.blocking_reasons
    ), list(purchase.blocking_reasons)
    started = await refused(
        h.exe.ExecutePlan(
            exe.ExecutePlanRequest(plan=plan.name, etag=plan.etag), metadata=md("carol")
        )
    )
    assert (started.code, started.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FROZEN")


HEDGE_BOOK = """
[balances]
USDT = 100000
BTC = 1
ETH = 10
[prices]
BTC = 50000
ETH = 2500
BTCDOWN = 10
"""


def with_hedge(targets: tuple[tuple[str, float], ...], hedge: str, weight: float) -> Any:
    request = gov.ProposePlanRequest(reason="hedged")
    for asset, w in targets:
        request.targets.add(asset=asset, weight_percent=w)
    request.targets.add(asset=hedge, weight_percent=weight, hedge=True)
    return request


async def test_hedge_targets_trade_as_hedge_legs(
    harness_factory: HarnessFactory, tmp_path: Path
) -> None:
    book = tmp_path / "paper.toml"
    book.write_text(HEDGE_BOOK)
    h = await harness_factory(paper_exchange_file=str(book))
    hedged = (("BTC", 28.57), ("ETH", 14.29), ("USDT", 52.14))
    proposed = (
        await h.gov.ProposePlan(with_hedge(hedged, "BTCDOWN", 5.0), metadata=md("alice"))
    ).plan
    assert [(t.asset, t.hedge) for t in proposed.targets][-1] == ("BTCDOWN", True)
    got = await h.gov.GetPlan(gov.GetPlanRequest(name=proposed.name), metadata=md("victor"))
    assert [t.hedge for t in got.plan.targets] == [False, False, False, True]  # stored
    plan = await approve(h, await review(h, proposed))
    name = (await activate(h, plan)).plan.name
    await freeze(h, FT.FREEZE_TYPE_S3_ALERT_FREEZE)
    v = await validate(h, name)
    [leg] = [leg for leg in v.legs if not leg.skip_reason]
    assert (leg.asset, leg.operation) == ("BTCDOWN", FT.OPERATION_HEDGE)
    assert {fv.operation for fv in v.freeze_verdicts} == {FT.OPERATION_HEDGE}
    assert v.executable, list(v.blocking_reasons)  # S3 allows hedges; mode FREEZE too
    await freeze(h, FT.FREEZE_TYPE_ERROR_FREEZE)
    v = await validate(h, name)
    assert not v.executable
    assert any("HEDGE is forbidden" in r for r in v.blocking_reasons), list(v.blocking_reasons)


async def test_a_stable_cannot_be_a_hedge(harness: Harness) -> None:
    error = await refused(
        harness.gov.ProposePlan(
            with_hedge((("BTC", 50.0), ("ETH", 45.0)), "USDC", 5.0), metadata=md("alice")
        )
    )
    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["targets[2].hedge"])
