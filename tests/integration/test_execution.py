"""Executions on the paper exchange, end to end through gRPC: sequential
and parallel, multi-day under the daily cap on the test clock, freezes
arriving mid-execution, injected faults, reconciliation after a restart; and
at the end of each, the store agrees with the paper exchange's book."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import plan_pb2
from tests.conftest import Harness
from tests.integration.freeze_helpers import freeze, wait_for
from tests.integration.helpers import activate, approve, propose, refused, review
from tests.integration.test_policy_api import CONFIDENT, publish, signal_set
from tests.support import md, snapshot

ES = execution_pb2
# Paper account: 100,000 USDT, 1 BTC (50,000), 10 ETH (2,500): 175,000.
SMALL = (("BTC", 26.0), ("ETH", 17.0), ("USDT", 57.0))  # sell ~4.5k BTC, buy ~4.75k ETH
# An execution still at work (CANCELLING too: its cancels are not confirmed).
LIVE = (ES.EXECUTION_STATE_PENDING, ES.EXECUTION_STATE_RUNNING, ES.EXECUTION_STATE_CANCELLING)
BIG = (("BTC", 20.0), ("ETH", 20.0), ("SOL", 10.0), ("USDT", 50.0))  # 42,500 to trade


async def active(h: Harness, targets: tuple[tuple[str, float], ...]) -> plan_pb2.Plan:
    plan = await approve(h, await review(h, await propose(h, "alice", targets)))
    return (await activate(h, plan)).plan


async def execute(h: Harness, plan: plan_pb2.Plan, **fields: Any) -> ES.Execution:
    response = await h.exe.ExecutePlan(
        exe.ExecutePlanRequest(plan=plan.name, etag=plan.etag, **fields), metadata=md("carol")
    )
    return response.execution


async def get(h: Harness, name: str) -> ES.Execution:
    return (
        await h.exe.GetExecution(exe.GetExecutionRequest(name=name), metadata=md("victor"))
    ).execution


async def wait_ended(h: Harness, name: str, within: float = 60) -> ES.Execution:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        execution = await get(h, name)
        if execution.state not in LIVE:
            return execution
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {ES.ExecutionState.Name(execution.state)}")
        await asyncio.sleep(0.05)


async def idle(h: Harness, name: str, within: float = 15) -> None:
    """Waits until the runner has sent everything due by the test clock."""
    from govex_server.domain.execution.orders import OrderState

    execution_id = name.split("/")[1]
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        rows, record = await h.store.read(
            lambda uow: (
                uow.orders.for_execution(execution_id),
                uow.executions.get(execution_id),
            )
        )
        busy = [
            o
            for o in rows
            if (o.state is OrderState.PENDING and o.scheduled_time <= h.clock.now())
            or o.state in (OrderState.SUBMITTED, OrderState.UNKNOWN)
        ]
        if not busy or (record is not None and record.state.terminal):
            return
        await asyncio.sleep(0.05)
        h.clock.advance(timedelta(seconds=1))  # a Retry-After also needs time to pass
    raise AssertionError("the runner did not catch up")


async def run_days(h: Harness, name: str, days: int) -> ES.Execution:
    """Moves the test clock a day at a time (letting the runner catch up)
    until the execution ends."""
    for _ in range(days):
        h.clock.advance(timedelta(days=1))
        await asyncio.sleep(0.05)
        await idle(h, name)
        execution = await get(h, name)
        if execution.state not in LIVE:
            return execution
    return await wait_ended(h, name)


async def orders(h: Harness, name: str) -> list[ES.Order]:
    response = await h.exe.ListOrders(
        exe.ListOrdersRequest(parent=name, page_size=1000), metadata=md("victor")
    )
    return list(response.orders)


def paper(h: Harness) -> Any:
    assert h.running is not None
    # The paper exchange itself (its test hooks), not the metrics' wrapper.
    return h.running.exchanges.get("").inner  # type: ignore[attr-defined]


async def assert_store_matches_book(h: Harness, name: str) -> None:
    stored = {o.client_order_id: o for o in await orders(h, name)}
    book = {o.client_id: o for o in await paper(h).orders("gx")}
    sent = {cid: o for cid, o in stored.items() if o.exchange_order_id}
    assert set(sent) == set(book), "every order the exchange has is known, and vice versa"
    for cid, o in sent.items():
        # Exactly what the exchange reported, as a decimal string.
        assert o.filled_quantity.value == str(book[cid].filled)
    assert len(stored) == len({o.client_order_id for o in stored.values()})


async def plan_state(h: Harness, plan: plan_pb2.Plan) -> int:
    from govex.governance.v1 import governance_service_pb2 as gov

    got = await h.gov.GetPlan(gov.GetPlanRequest(name=plan.name), metadata=md("victor"))
    return got.plan.state


@pytest.mark.parametrize(
    "strategy", [ES.EXECUTION_STRATEGY_SEQUENTIAL, ES.EXECUTION_STRATEGY_PARALLEL]
)
async def test_execution_fills_completely_and_executes_the_plan(
    harness: Harness, strategy: int
) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))  # AGGRESSIVE: one day
    await h.settle()
    plan = await active(h, SMALL)
    started = await execute(h, plan, strategy=strategy, max_parallel=8)
    assert started.state == ES.EXECUTION_STATE_RUNNING
    assert started.legs[0].side == ES.ORDER_SIDE_SELL
    ended = await run_days(h, started.name, 2)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED, ended.state_reason
    assert [(c.state, c.count > 0) for c in ended.order_counts] == [(ES.ORDER_STATE_FILLED, True)]
    assert await plan_state(h, plan) == plan_pb2.PLAN_STATE_EXECUTED
    await assert_store_matches_book(h, started.name)
    balances = await paper(h).balances()
    assert float(balances["BTC"].total) == pytest.approx(26 / 100 * 175_000 / 50_000, rel=0.01)


async def test_multi_day_execution_keeps_under_the_daily_cap(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)  # no signals: SLOW, 3% a day = 5,250
    started = await execute(h, plan)
    first = await orders(h, started.name)
    days = {o.slice_index for o in first}
    assert len(first) > 9 and days
    ended = await run_days(h, started.name, 12)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED, ended.state_reason
    assert h.running is not None
    from sqlalchemy import select

    from govex_server.store import tables as t

    query = select(t.daily_notional.c.notional)
    rows = await h.store.read(lambda uow: uow.conn.execute(query).all())
    assert len(rows) >= 9
    assert all(r[0] <= 5_250 * 1.01 for r in rows)  # fills at the slipped price
    await assert_store_matches_book(h, started.name)


async def test_full_freeze_cancels_open_orders_and_stops_the_execution(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    paper(h).inject("partial_fill", 3)  # leave open orders on the book
    started = await execute(h, plan)
    h.clock.advance(timedelta(hours=1))

    async def resting() -> bool:
        return any(
            o.state == ES.ORDER_STATE_PARTIALLY_FILLED for o in await orders(h, started.name)
        )

    await wait_for(resting, within=30)
    await freeze(h, freeze_pb2.FREEZE_TYPE_FULL_FREEZE)
    ended = await wait_ended(h, started.name)
    assert ended.state == ES.EXECUTION_STATE_CANCELLED
    assert "FULL_FREEZE" in ended.state_reason
    assert not await paper(h).orders("gx", open_only=True)
    states = {o.state for o in await orders(h, started.name)}
    assert states <= {ES.ORDER_STATE_FILLED, ES.ORDER_STATE_CANCELLED}
    await assert_store_matches_book(h, started.name)


@pytest.mark.parametrize(
    "fault", ["timeout_after", "timeout_before", "rate_limited", "unavailable"]
)
async def test_faults_on_send_are_resolved_without_duplicates(harness: Harness, fault: str) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    paper(h).inject(fault)
    started = await execute(h, plan)
    ended = await run_days(h, started.name, 2)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED, ended.state_reason
    stored = await orders(h, started.name)
    if fault == "timeout_before":  # the lost send was retried under a new id
        assert any(o.attempt == 1 for o in stored)
        assert any("not found at the exchange" in o.state_reason for o in stored)
    await assert_store_matches_book(h, started.name)


async def test_rejection_and_partial_fill(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    paper(h).inject("reject")
    started = await execute(h, plan)
    ended = await run_days(h, started.name, 2)
    assert ended.state == ES.EXECUTION_STATE_PARTIALLY_FILLED
    assert any(o.state == ES.ORDER_STATE_REJECTED for o in await orders(h, started.name))
    assert await plan_state(h, plan) == plan_pb2.PLAN_STATE_ACTIVE  # not every leg filled


async def test_partial_fill_then_the_rest(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    paper(h).inject("partial_fill")
    started = await execute(h, plan)
    # The first slices are due at the start: the clock stays put until one
    # rests. Moved first, a resting order sent before the move would be past
    # its TTL at once, cancelled and re-sent before the wait saw it rest (a
    # loaded machine did that).

    async def one_rests_partially_filled() -> bool:
        states = [o.state for o in await orders(h, started.name)]
        return ES.ORDER_STATE_PARTIALLY_FILLED in states

    await wait_for(one_rests_partially_filled, within=10)
    await paper(h).fill_resting()
    # A day later the signals are ERROR (cap 5%): the day's last slice may be
    # deferred to the next one, so days are moved until the end.
    ended = await run_days(h, started.name, 3)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED
    await assert_store_matches_book(h, started.name)


async def test_dry_run_sends_nothing_and_changes_nothing(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    await h.settle()
    audit_trail = {"audit_log", "audit_head"}
    before = await snapshot(h.store)
    dry = await execute(h, plan, dry_run=True)
    assert dry.state == ES.EXECUTION_STATE_SIMULATED
    assert dry.dry_run
    after = await snapshot(h.store)
    # The audit trail records that somebody asked, and the simulated
    # execution is kept to be read again; nothing else changed (no event,
    # no traded notional, the plan as it was).
    kept = audit_trail | {"executions", "orders"}
    assert {k: v for k, v in after.items() if k not in kept} == {
        k: v for k, v in before.items() if k not in kept
    }
    got = await get(h, dry.name)
    assert (got.state, got.dry_run) == (ES.EXECUTION_STATE_SIMULATED, True)
    assert got.HasField("end_time")
    listed = await h.exe.ListExecutions(exe.ListExecutionsRequest(), metadata=md("victor"))
    assert dry.name in [e.name for e in listed.executions]
    simulated = await orders(h, dry.name)
    assert simulated and {o.state for o in simulated} == {ES.ORDER_STATE_FILLED}
    assert not any(o.exchange_order_id for o in simulated)
    records = await h.store.read(lambda uow: uow.audit.for_resource(dry.name))
    assert [(r.rpc, r.details["dry_run"]) for r in records] == [
        ("ExecutionService.ExecutePlan", True)
    ]
    assert await paper(h).orders("gx") == []


async def test_bad_execute_requests(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    draft = await propose(h, "alice", BIG)
    await h.settle()
    before = await snapshot(h.store)
    cases: list[tuple[Any, grpc.StatusCode, str]] = [
        (execute(h, draft), grpc.StatusCode.FAILED_PRECONDITION, "PLAN_STATE"),
        (
            h.exe.ExecutePlan(
                exe.ExecutePlanRequest(plan=plan.name, etag='W/"stale"'), metadata=md("carol")
            ),
            grpc.StatusCode.ABORTED,
            "ETAG_MISMATCH",
        ),
        (execute(h, plan, exchange="exchanges/kraken"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (execute(h, plan, max_parallel=65), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (
            execute(h, plan, strategy=ES.EXECUTION_STRATEGY_PARALLEL, max_parallel=0),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
        (execute(h, plan, strategy=7), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (
            h.exe.ExecutePlan(
                exe.ExecutePlanRequest(plan=plan.name, etag=plan.etag), metadata=md("victor")
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_REQUIRED",
        ),
    ]
    for call, code, reason in cases:
        error = await refused(call)
        assert (error.code, error.reason) == (code, reason), error
    assert await snapshot(h.store) == before
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE)
    await h.settle()
    frozen = await refused(execute(h, plan))
    assert (frozen.code, frozen.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FROZEN")


async def test_twice_at_once_is_aborted(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    first = await execute(h, plan)
    second = await refused(execute(h, plan))
    assert (second.code, second.reason) == (grpc.StatusCode.ABORTED, "EXECUTION_RUNNING")
    cancelled = await h.exe.CancelExecution(
        exe.CancelExecutionRequest(name=first.name, reason="test"), metadata=md("carol")
    )
    # It answers at once; the end comes when the exchange confirmed.
    assert cancelled.execution.state == ES.EXECUTION_STATE_CANCELLING
    assert cancelled.execution.state_reason == "cancelled by carol: test"
    still = await refused(execute(h, plan))  # a cancelling execution holds its plan
    assert still.reason == "EXECUTION_RUNNING"
    ended = await wait_ended(h, first.name)
    assert ended.state == ES.EXECUTION_STATE_CANCELLED
    again = await refused(
        h.exe.CancelExecution(exe.CancelExecutionRequest(name=first.name), metadata=md("carol"))
    )
    assert again.reason == "EXECUTION_STATE"


async def test_watch_orders_follows_an_execution_to_its_end(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    started = await execute(h, plan)
    call = h.exe.WatchOrders(
        exe.WatchOrdersRequest(execution=started.name, from_oldest=True), metadata=md("victor")
    )
    h.clock.advance(timedelta(days=1))
    seen: dict[str, int] = {}
    order_events: list[tuple[str, int, str, str, int]] = []
    changes: list[tuple[int, int]] = []
    final: Any = None

    async def follow() -> None:
        nonlocal final
        while final is None:
            message: Any = await call.read()
            assert message is not grpc.aio.EOF
            if message.WhichOneof("message") == "event":
                event = message.event
                assert event.order.name.startswith(started.name + "/orders/")
                seen[event.order.client_order_id] = event.order.state
                order = event.order
                order_events.append(
                    (
                        order.name,
                        order.state,
                        order.filled_quantity.value,
                        order.state_reason,
                        order.update_time.ToNanoseconds(),
                    )
                )
            elif message.WhichOneof("message") == "execution_event":
                event = message.execution_event
                assert event.execution.name == started.name
                changes.append((event.type, event.execution.state))
                if event.type == ES.EXECUTION_EVENT_TYPE_ENDED:
                    final = event.execution

    # A day later the signals are ERROR (cap 5%): a slice may be deferred to
    # the next day, so days move while the stream is followed.
    days = asyncio.create_task(run_days(h, started.name, 3))
    await asyncio.wait_for(follow(), 60)  # a deadline, not a duration: loaded CI is slow
    await days
    call.cancel()
    assert set(seen.values()) == {ES.ORDER_STATE_FILLED}
    # The execution's own events: its start and its end with the reason.
    assert changes[0] == (ES.EXECUTION_EVENT_TYPE_STARTED, ES.EXECUTION_STATE_RUNNING)
    assert changes[-1] == (ES.EXECUTION_EVENT_TYPE_ENDED, ES.EXECUTION_STATE_SUCCEEDED)
    assert final.state_reason == "every order filled" and final.HasField("end_time")
    # No order event is sent twice (the end is not carried by a repeat of the
    # last): the stream had them all, and the execution's end is the last.
    assert len(order_events) == len(set(order_events))
    kinds = await _event_kinds(h, started.name)
    assert kinds.count("ORDER_UPDATED") == len(order_events)
    assert kinds[-1] == "EXECUTION_UPDATED"


async def _event_kinds(h: Harness, name: str) -> list[str]:
    """The kinds of the stored events of an execution and its orders, in order."""
    from sqlalchemy import select

    from govex_server.store import tables

    e = tables.events
    query = select(e.c.kind).where(e.c.resource.startswith(name)).order_by(e.c.sequence)
    return await h.store.read(lambda uow: [row[0] for row in uow.conn.execute(query)])


async def test_restart_reconciles_an_unknown_order(harness: Harness) -> None:
    from dataclasses import replace

    from govex_server.domain.execution.orders import OrderState
    from govex_server.domain.execution.records import ExecutionState

    h = harness
    plan = await active(h, SMALL)  # two days under the no-signal cap
    started = await execute(h, plan)
    await idle(h, started.name)  # day 0 sent; day 1 waits
    execution_id = started.name.split("/")[1]
    rows = await h.store.read(lambda uow: uow.orders.for_execution(execution_id))
    lost = next(o for o in rows if o.state is OrderState.PENDING)
    # As a crash leaves it: the order committed SUBMITTED and accepted by the
    # exchange, its answer never recorded, and its execution no longer run
    # (no runner will look at it: only start-up reconciliation does).
    await paper(h).create_order(
        lost.client_order_id, lost.symbol, lost.side, lost.quantity, lost.price
    )

    def crash_state(uow: Any) -> None:
        assert uow.orders.replace(replace(lost, state=OrderState.SUBMITTED), OrderState.PENDING)
        current = uow.executions.get(execution_id)
        failed = replace(current, state=ExecutionState.FAILED, version=current.version + 1)
        assert uow.executions.replace(failed, current.version)

    await h.store.write(crash_state)
    await h.restart()  # start-up awaits reconciliation before it serves
    found = await paper(h).fetch_order(lost.client_order_id)
    after = {o.client_order_id: o for o in await orders(h, started.name)}[lost.client_order_id]
    assert after.state == ES.ORDER_STATE_FILLED
    assert Decimal(after.filled_quantity.value) == found.filled
    assert after.exchange_order_id == found.exchange_id


async def test_insufficient_funds_is_a_rejection(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    paper(h).inject("insufficient_funds")
    started = await execute(h, plan)
    ended = await run_days(h, started.name, 2)
    assert ended.state == ES.EXECUTION_STATE_PARTIALLY_FILLED
    rejected = [o for o in await orders(h, started.name) if o.state == ES.ORDER_STATE_REJECTED]
    assert rejected and "insufficient" in rejected[0].state_reason
    await assert_store_matches_book(h, started.name)


async def test_a_fill_racing_the_cancel_wins(harness: Harness) -> None:
    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    paper(h).inject("partial_fill", 2)
    started = await execute(h, plan)
    # Both legs' first slices are due at the start, and both meet a partial
    # fill. The clock stays put: an order sent before a move past its TTL
    # would be cancelled and re-sent at once, and rest no more.

    async def resting_orders() -> set[str]:
        return {
            o.name
            for o in await orders(h, started.name)
            if o.state == ES.ORDER_STATE_PARTIALLY_FILLED
        }

    async def both_rest() -> bool:
        return len(await resting_orders()) == 2

    await wait_for(both_rest, within=30)
    resting = await resting_orders()
    paper(h).inject("fill_races_cancel", len(resting))
    await h.exe.CancelExecution(
        exe.CancelExecutionRequest(name=started.name, reason="race"), metadata=md("carol")
    )
    ended = await wait_ended(h, started.name)
    assert ended.state == ES.EXECUTION_STATE_CANCELLED
    # Each resting order filled at the exchange before its cancel arrived:
    # the store says FILLED (with the whole quantity), not CANCELLED.
    after = {o.name: o for o in await orders(h, started.name)}
    for name in resting:
        assert after[name].state == ES.ORDER_STATE_FILLED, after[name].state_reason
        assert Decimal(after[name].filled_quantity.value) == Decimal(after[name].quantity.value)
    await assert_store_matches_book(h, started.name)


async def test_an_order_unknown_to_the_store_is_adopted_at_start(harness: Harness) -> None:
    h = harness
    plan = await active(h, BIG)
    started = await execute(h, plan)
    execution_id = started.name.split("/")[1]
    from govex_server.domain.execution.orders import client_order_id

    stray = client_order_id(execution_id, 0, 999, 0)
    # As if govex crashed between the exchange accepting and the row being written.
    await paper(h).create_order(stray, "BTC/USDT", "SELL", Decimal("0.01"), Decimal(49_000))
    await h.restart()
    running = h.running
    assert running is not None

    async def adopted_it() -> bool:
        # At start on SQLite; on PostgreSQL when the lease released by the
        # stopped replica is claimed (a takeover, within a heartbeat).
        return stray in running.engine.adopted

    await wait_for(adopted_it, within=15)
    adopted = [o for o in await orders(h, started.name) if o.client_order_id == stray]
    assert adopted and adopted[0].state_reason == "adopted at reconciliation"


async def test_orders_the_safety_validator_refuses_block_the_execution(
    harness_factory: Any,
) -> None:
    h = await harness_factory(max_order_notional=100.0)
    plan = await active(h, BIG)
    await h.settle()
    before = await snapshot(h.store)
    error = await refused(execute(h, plan))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SAFETY_REJECTED")
    assert "MAX_ORDER_NOTIONAL" in str(error)
    assert await snapshot(h.store) == before
    assert await paper(h).orders("gx") == []


async def test_an_impossible_fill_report_is_not_recorded(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    plan = await active(h, BIG)
    started = await execute(h, plan)
    await idle(h, started.name)
    assert h.running is not None
    engine = h.running.engine
    execution_id = started.name.split("/")[1]
    stored = await h.store.read(lambda uow: uow.orders.for_execution(execution_id))
    filled = next(o for o in stored if o.filled > 0)
    execution = await h.store.read(lambda uow: uow.executions.get(execution_id))
    assert execution is not None
    from govex_server.exchanges.base import ExchangeOrder

    for reported in (filled.filled - Decimal("0.00001"), filled.quantity + Decimal("0.00001")):
        report = ExchangeOrder(
            filled.client_order_id,
            filled.exchange_order_id,
            filled.symbol,
            filled.side,
            filled.quantity,
            filled.price,
            reported,
            filled.average_price,
            filled.fee,
            "open",
        )
        with caplog.at_level("ERROR", logger="govex.engine"):
            kept = await engine.records.apply(execution, filled, report)
        assert (kept.filled, kept.state) == (filled.filled, filled.state)
        again = await h.store.read(lambda uow: uow.orders.get(filled.id))
        assert again is not None and again.filled == filled.filled
        assert f"exchange report for {filled.name} ignored" in caplog.text
        caplog.clear()
