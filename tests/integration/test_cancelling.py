"""Cancels a desk can rely on (issue 12): CancelExecution answers at once
with the execution CANCELLING, which ends CANCELLED when the exchange has
confirmed; a refused cancel keeps it CANCELLING (with the last error shown)
without holding the request; CANCELLING survives a restart; CancelPlan
cancels the plan's running execution in the same request; WatchOrders shows
the start and end of an execution that sent nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from govex.execution.v1 import execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from tests.conftest import Harness
from tests.integration.freeze_helpers import wait_for
from tests.integration.test_execution import (
    BIG,
    active,
    assert_store_matches_book,
    execute,
    get,
    orders,
    paper,
    wait_ended,
)
from tests.support import md

ES = execution_pb2


async def _resting(h: Harness, name: str) -> bool:
    return any(o.state == ES.ORDER_STATE_PARTIALLY_FILLED for o in await orders(h, name))


async def _cancel(h: Harness, name: str, deadline: float = 30) -> ES.Execution:
    response = await h.exe.CancelExecution(
        exe.CancelExecutionRequest(name=name, reason="stop"), metadata=md("carol"), timeout=deadline
    )
    return response.execution


async def test_a_refused_cancel_leaves_it_cancelling_not_the_caller_waiting(
    harness: Harness,
) -> None:
    h = harness
    plan = await active(h, BIG)
    paper(h).inject("partial_fill")  # one order rests open on the book
    started = await execute(h, plan)
    await wait_for(lambda: _resting(h, started.name), within=30)
    paper(h).inject("cancel_refused", 3)
    # The exchange refuses the cancels: the request does not wait for them.
    cancelling = await _cancel(h, started.name, deadline=3)
    assert cancelling.state == ES.EXECUTION_STATE_CANCELLING
    assert cancelling.state_reason == "cancelled by carol: stop"

    async def error_shown() -> bool:
        return "still cancelling: restart" in (await get(h, started.name)).state_reason

    await wait_for(error_shown, within=30)

    async def ended() -> bool:
        h.clock.advance(timedelta(seconds=5))  # the supervisor's backoff runs on the clock
        return (await get(h, started.name)).state == ES.EXECUTION_STATE_CANCELLED

    await wait_for(ended, within=60)
    final = await get(h, started.name)
    assert final.state_reason == "cancelled by carol: stop"  # the error is gone with the end
    assert paper(h).cancels_refused == 3
    assert not await paper(h).orders("gx", open_only=True)
    await assert_store_matches_book(h, started.name)


async def test_cancelling_survives_a_restart(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    paper(h).inject("partial_fill")
    started = await execute(h, plan)
    await wait_for(lambda: _resting(h, started.name), within=30)
    paper(h).inject("cancel_refused", 1000)  # this server never gets the cancel through
    assert (await _cancel(h, started.name)).state == ES.EXECUTION_STATE_CANCELLING
    await h.restart()  # a new server (and a paper account without the fault)
    ended = await wait_ended(h, started.name)
    assert (ended.state, ended.state_reason) == (
        ES.EXECUTION_STATE_CANCELLED,
        "cancelled by carol: stop",
    )
    assert not await paper(h).orders("gx", open_only=True)
    await assert_store_matches_book(h, started.name)


async def test_cancel_plan_cancels_its_running_execution(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    started = await execute(h, plan)
    plan = (await h.gov.GetPlan(gov.GetPlanRequest(name=plan.name), metadata=md("victor"))).plan
    response = await h.gov.CancelPlan(
        gov.CancelPlanRequest(name=plan.name, etag=plan.etag, reason="wrong weights"),
        metadata=md("carol"),
    )
    assert response.plan.state == plan_pb2.PLAN_STATE_CANCELLED
    ended = await wait_ended(h, started.name)
    assert ended.state == ES.EXECUTION_STATE_CANCELLED
    assert ended.state_reason == f"cancelled with {plan.name} by carol: wrong weights"
    records = await h.store.read(lambda uow: uow.audit.for_resource(started.name))
    assert "CancelPlan" in [r.rpc for r in records]  # audited on the execution too
    assert {o.state for o in await orders(h, started.name)} <= {
        ES.ORDER_STATE_FILLED,
        ES.ORDER_STATE_CANCELLED,
    }
    await assert_store_matches_book(h, started.name)


async def test_a_refused_cancel_plan_leaves_the_execution_running(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    started = await execute(h, plan)
    plan = (await h.gov.GetPlan(gov.GetPlanRequest(name=plan.name), metadata=md("victor"))).plan
    try:
        await h.gov.CancelPlan(
            gov.CancelPlanRequest(name=plan.name, etag=plan.etag, reason="no"),
            metadata=md("victor"),  # a viewer may not cancel
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
    else:
        raise AssertionError("a viewer cancelled a plan")
    assert (await get(h, started.name)).state == ES.EXECUTION_STATE_RUNNING


async def test_an_execution_with_nothing_to_send_has_a_visible_start_and_end(
    harness: Harness,
) -> None:
    h = harness
    # The paper account already holds these weights: every leg is in the
    # no-trade zone, so the execution has no orders at all.
    plan = await active(h, (("BTC", 28.57), ("ETH", 14.29), ("USDT", 57.14)))
    started = await execute(h, plan)
    call = h.exe.WatchOrders(
        exe.WatchOrdersRequest(execution=started.name, from_oldest=True), metadata=md("victor")
    )
    changes: list[Any] = []
    while not changes or changes[-1].type != ES.EXECUTION_EVENT_TYPE_ENDED:
        message: Any = await call.read()
        assert message is not grpc.aio.EOF
        assert message.WhichOneof("message") != "event", "no order exists"
        if message.WhichOneof("message") == "execution_event":
            changes.append(message.execution_event)
    call.cancel()
    assert [c.type for c in changes] == [
        ES.EXECUTION_EVENT_TYPE_STARTED,
        ES.EXECUTION_EVENT_TYPE_ENDED,
    ]
    assert changes[-1].execution.state == ES.EXECUTION_STATE_SUCCEEDED
    assert "every leg skipped by policy" in changes[-1].execution.state_reason
    assert changes[0].sequence < changes[1].sequence
