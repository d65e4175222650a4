"""Metrics scraped over HTTP after a plan walk, a refusal, a freeze and an
execution show exactly the counts that happened (read back from the store
and from ListOrders, not assumed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2 as ES
from govex_server.store.database import UnitOfWork
from tests.conftest import Harness
from tests.integration.freeze_helpers import freeze
from tests.integration.helpers import propose, refused
from tests.integration.test_execution import SMALL, active, execute, orders, run_days
from tests.integration.test_policy_api import CONFIDENT, publish, signal_set

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(h: Harness) -> Samples:
    assert h.running is not None and h.running.exposition is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", h.running.exposition.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/plain; version=" in head
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def test_a_scrape_counts_what_happened(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.INFO, logger="govex.activity")
    before = await scrape(h)
    assert value(before, "govex_store_up") == 1
    assert value(before, "govex_audit_chain_intact") == 1
    assert value(before, "govex_rpc_requests_total", rpc="ProposePlan", code="OK") == 0

    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))  # AGGRESSIVE: one day
    await h.settle()
    plan = await active(h, SMALL)  # propose, review, approve, activate
    await refused(propose(h, "bob", (("BTC", 50.0), ("USDT", 50.0))))  # bob may not propose
    started = await execute(h, plan)
    ended = await run_days(h, started.name, 2)
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, reason="metrics test")
    sent = await orders(h, started.name)

    after = await scrape(h)
    for rpc in ("ProposePlan", "ReviewPlan", "ApprovePlan", "ActivatePlan", "Freeze"):
        assert value(after, "govex_rpc_requests_total", rpc=rpc, code="OK") == 1, rpc
    assert (
        value(after, "govex_rpc_requests_total", rpc="ProposePlan", code="PERMISSION_DENIED") == 1
    )
    assert value(after, "govex_rpc_duration_seconds_count", rpc="ProposePlan") == 2
    # The plan walk, as the store has it.
    assert value(after, "govex_plans", state="EXECUTED") == 1
    assert value(after, "govex_executions", state="SUCCEEDED") == 1
    assert value(after, "govex_freezes_active", type="S3_ALERT_FREEZE") == 1
    assert value(after, "govex_freezes_active", type="FULL_FREEZE") == 0
    assert h.running is not None
    policy = (await h.running.policy.view()).policy
    assert value(after, "govex_policy_mode", mode=policy.mode.name) == 1
    assert total(after, "govex_policy_mode") == 1  # one mode in force
    assert value(after, "govex_policy_cap_daily_ratio") == policy.cap_daily
    assert value(after, "govex_signal_age_seconds") >= 0
    assert value(after, "govex_governance_mode", mode="MANUAL") == 1
    # Every order the execution sent, sent and filled once, on the paper account.
    filled = [o for o in sent if o.state == ES.ORDER_STATE_FILLED]
    assert filled and len(filled) == len(sent)
    assert value(after, "govex_order_updates_total", account="paper", state="SUBMITTED") == len(
        sent
    )
    assert value(after, "govex_order_updates_total", account="paper", state="FILLED") == len(filled)
    assert value(after, "govex_order_updates_total", account="paper", state="REJECTED") == 0
    # ... and each of those changes logged once, with its account and state.
    told = [getattr(r, "fields", {}) for r in caplog.records if r.name == "govex.activity"]
    orders_told = [f for f in told if "symbol" in f]
    assert sum(f["state"] == "SUBMITTED" for f in orders_told) == len(sent)
    assert sum(f["state"] == "FILLED" for f in orders_told) == len(filled)
    assert {f["account"] for f in told} == {"paper"}
    assert any(f.get("change") == "ENDED" for f in told)
    creates = value(
        after, "govex_exchange_call_duration_seconds_count", account="paper", call="create_order"
    )
    assert creates == len(sent)
    assert total(after, "govex_exchange_errors_total") == 0
    assert value(after, "govex_rate_budget_remaining", account="paper") >= 0
    # The store: every write transaction observed, the head is the store's.
    head = await h.store.read(lambda uow: uow.events.newest())
    assert value(after, "govex_event_sequence_head") == head
    dialect = h.store.dialect
    writes = value(after, "govex_store_transaction_duration_seconds_count", dialect=dialect)
    assert writes > 0
    assert value(after, "govex_store_batch_units_count", dialect=dialect) == writes
    audited = await h.store.read(lambda uow: uow.audit.head())
    assert value(after, "govex_audit_chain_head") == audited[0]
    assert value(after, "govex_runner_restarts_total") == 0
    # The simulated exchange's own cost, apart from govex's: its book worked.
    book_before = value(before, "govex_paper_book_cpu_seconds_total", account="paper")
    assert value(after, "govex_paper_book_cpu_seconds_total", account="paper") > book_before
    # The process and its garbage collector, beside govex's own.
    assert value(after, "process_resident_memory_bytes") > 0
    for generation in "012":
        assert ("python_gc_collections_total", (("generation", generation),)) in after


async def test_anything_but_get_metrics_is_refused(harness: Harness) -> None:
    h = harness
    assert h.running is not None and h.running.exposition is not None

    async def ask(request: bytes) -> bytes:
        assert h.running is not None and h.running.exposition is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", h.running.exposition.port)
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return raw.split(b"\r\n", 1)[0]

    assert await ask(b"GET /nothing HTTP/1.1\r\n\r\n") == b"HTTP/1.1 404 Not Found"
    assert await ask(b"POST /metrics HTTP/1.1\r\n\r\n") == b"HTTP/1.1 405 Method Not Allowed"


async def test_a_scrape_answers_when_the_store_cannot_be_read(harness: Harness) -> None:
    from sqlalchemy import text

    h = harness

    def rename(old: str, new: str) -> Callable[[UnitOfWork], None]:
        def unit(uow: UnitOfWork) -> None:
            uow.conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

        return unit

    await h.store.write(rename("plans", "plans_hidden"))
    try:
        broken = await scrape(h)
    finally:
        await h.store.write(rename("plans_hidden", "plans"))
    assert value(broken, "govex_store_up") == 0
    assert ("govex_plans", (("state", "DRAFT"),)) not in broken  # no made-up zeros
    assert ("govex_stream_subscribers", ()) in broken  # what the process knows still shows
    assert value(await scrape(h), "govex_store_up") == 1
