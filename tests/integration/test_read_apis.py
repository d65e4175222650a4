"""The read APIs of the v1 contract: GetFreeze, GetExchange (balances and
markets as exact decimals), ListSignals, paginated ListExchanges, and the
AIP-160 ``filter`` of every List, against both stores."""

from __future__ import annotations

from datetime import timedelta

import grpc

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from tests.conftest import Harness
from tests.integration.freeze_helpers import freeze, unfreeze
from tests.integration.helpers import propose, refused
from tests.integration.test_execution import BIG, active, execute, orders
from tests.integration.test_policy_api import publish, signal_set
from tests.support import md


async def test_get_freeze_active_and_ended(harness: Harness) -> None:
    h = harness
    created = await freeze(h, freeze_pb2.FREEZE_TYPE_ERROR_FREEZE)
    got = await h.gov.GetFreeze(gov.GetFreezeRequest(name=created.name), metadata=md("victor"))
    assert got.freeze == created
    await unfreeze(h, created.name)
    ended = (
        await h.gov.GetFreeze(gov.GetFreezeRequest(name=created.name), metadata=md("victor"))
    ).freeze
    assert ended.end == freeze_pb2.FREEZE_END_LIFTED and ended.HasField("end_time")
    missing = await refused(
        h.gov.GetFreeze(
            gov.GetFreezeRequest(name="freezes/01HZZZZZZZZZZZZZZZZZZZZZZZ"), metadata=md("victor")
        )
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    for bad in ("", "plans/x", "freezes/not-an-id"):
        error = await refused(
            h.gov.GetFreeze(gov.GetFreezeRequest(name=bad), metadata=md("victor"))
        )
        assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["name"]), bad


async def test_get_exchange_shows_exact_balances_and_markets(harness: Harness) -> None:
    h = harness
    got = await h.exe.GetExchange(
        exe.GetExchangeRequest(name="exchanges/paper"), metadata=md("victor")
    )
    assert got.exchange.name == "exchanges/paper"
    assert got.exchange.rate_budget.max_orders > 0
    balances = {b.asset: (b.free.value, b.total.value) for b in got.balances}
    assert balances == {"BTC": ("1", "1"), "ETH": ("10", "10"), "USDT": ("100000", "100000")}
    markets = {m.symbol: m for m in got.markets}
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    btc = markets["BTC/USDT"]
    assert (btc.amount_step.value, btc.price_step.value, btc.min_notional.value) == (
        "0.00001",
        "0.01",
        "10",
    )
    missing = await refused(
        h.exe.GetExchange(exe.GetExchangeRequest(name="exchanges/nope"), metadata=md("victor"))
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    bad = await refused(
        h.exe.GetExchange(exe.GetExchangeRequest(name="paper"), metadata=md("victor"))
    )
    assert (bad.code, bad.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["name"])


async def test_list_exchanges_pages_and_filters(harness: Harness) -> None:
    h = harness
    first = await h.exe.ListExchanges(exe.ListExchangesRequest(page_size=1), metadata=md("victor"))
    assert [e.name for e in first.exchanges] == ["exchanges/paper"]
    assert first.next_page_token == ""  # the only account
    paper = await h.exe.ListExchanges(
        exe.ListExchangesRequest(filter="kind = PAPER AND sandbox = true"), metadata=md("victor")
    )
    assert [e.name for e in paper.exchanges] == ["exchanges/paper"]
    ccxt = await h.exe.ListExchanges(
        exe.ListExchangesRequest(filter="kind = EXCHANGE_KIND_CCXT"), metadata=md("victor")
    )
    assert list(ccxt.exchanges) == []
    error = await refused(
        h.exe.ListExchanges(exe.ListExchangesRequest(filter="kind = BANK"), metadata=md("victor"))
    )
    assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["filter"])


async def test_list_signals_is_the_history_newest_first(harness: Harness) -> None:
    h = harness
    for minutes_old in (30, 20, 10):
        await publish(h, signal_set(h, minutes_old=minutes_old, confidence=0.5))
        h.clock.advance(timedelta(seconds=1))
    page = await h.gov.ListSignals(gov.ListSignalsRequest(page_size=2), metadata=md("victor"))
    assert len(page.signal_sets) == 2 and page.next_page_token
    rest = await h.gov.ListSignals(
        gov.ListSignalsRequest(page_size=2, page_token=page.next_page_token), metadata=md("victor")
    )
    every = [*page.signal_sets, *rest.signal_sets]
    assert len(every) == 3 and rest.next_page_token == ""
    assert all(s.name.startswith("signalSets/") for s in every)
    as_of = [s.as_of.ToDatetime() for s in every]
    assert as_of == sorted(as_of, reverse=True)
    current = await h.gov.GetSignals(gov.GetSignalsRequest(), metadata=md("victor"))
    assert current.signals.name == every[0].name
    cutoff = every[1].as_of.ToJsonString()
    newer = await h.gov.ListSignals(
        gov.ListSignalsRequest(filter=f'as_of > "{cutoff}" AND publisher = "model-7"'),
        metadata=md("victor"),
    )
    assert [s.name for s in newer.signal_sets] == [every[0].name]
    wrong = await refused(
        h.gov.ListSignals(
            gov.ListSignalsRequest(page_token=page.next_page_token, filter="publisher = x"),
            metadata=md("victor"),
        )
    )
    assert (wrong.code, wrong.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


async def test_every_list_filters(harness: Harness) -> None:
    h = harness
    draft = await propose(h, "alice")
    plan = await active(h, BIG)
    started = await execute(h, plan)
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE)

    plans = await h.gov.ListPlans(
        gov.ListPlansRequest(filter="state = DRAFT"), metadata=md("victor")
    )
    assert [p.name for p in plans.plans] == [draft.name]
    after = plan.create_time.ToJsonString()
    newer = await h.gov.ListPlans(
        gov.ListPlansRequest(filter=f'create_time >= "{after}" AND state != DRAFT'),
        metadata=md("victor"),
    )
    assert [p.state for p in newer.plans] == [plan_pb2.PLAN_STATE_ACTIVE]

    freezes = await h.gov.ListFreezes(
        gov.ListFreezesRequest(filter="type = FULL_FREEZE"), metadata=md("victor")
    )
    assert list(freezes.freezes) == []
    s3 = await h.gov.ListFreezes(
        gov.ListFreezesRequest(filter='type = S3_ALERT_FREEZE AND actor = "carol"'),
        metadata=md("victor"),
    )
    assert len(s3.freezes) == 1

    executions = await h.exe.ListExecutions(
        exe.ListExecutionsRequest(filter=f'plan = "{plan.name}" AND exchange = "exchanges/paper"'),
        metadata=md("victor"),
    )
    assert [e.name for e in executions.executions] == [started.name]
    none = await h.exe.ListExecutions(
        exe.ListExecutionsRequest(filter="state = SUCCEEDED"), metadata=md("victor")
    )
    assert list(none.executions) == []

    every = await orders(h, started.name)
    sells = await h.exe.ListOrders(
        exe.ListOrdersRequest(parent="executions/-", filter="side = SELL", page_size=1000),
        metadata=md("victor"),
    )
    assert sells.orders and all(o.side == execution_pb2.ORDER_SIDE_SELL for o in sells.orders)
    assert len(sells.orders) < len(every)
    btc = await h.exe.ListOrders(
        exe.ListOrdersRequest(parent=started.name, filter='symbol = "BTC/USDT"', page_size=1000),
        metadata=md("victor"),
    )
    assert {o.symbol for o in btc.orders} == {"BTC/USDT"}

    audit = await h.gov.ListAuditRecords(
        gov.ListAuditRecordsRequest(filter='rpc = "Freeze" AND principal_kind = human'),
        metadata=md("audrey"),
    )
    assert [r.rpc for r in audit.audit_records] == ["Freeze"]

    for call in (
        h.gov.ListPlans(gov.ListPlansRequest(filter="state = ON"), metadata=md("victor")),
        h.gov.ListFreezes(gov.ListFreezesRequest(filter="kind = X"), metadata=md("victor")),
        h.exe.ListExecutions(
            exe.ListExecutionsRequest(filter='plan = "executions/x"'), metadata=md("victor")
        ),
        h.exe.ListOrders(
            exe.ListOrdersRequest(parent="executions/-", filter="side > BUY"),
            metadata=md("victor"),
        ),
        h.gov.ListAuditRecords(
            gov.ListAuditRecordsRequest(filter="time > now"), metadata=md("audrey")
        ),
    ):
        error = await refused(call)
        assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["filter"])
