"""The audit log proves itself: a row edited, deleted or moved in the
database is named by `govex-server verify-audit` (the first broken link),
an untouched chain verifies, the server's start-up check logs the break, and
ListAuditRecords hands out records and hashes that another system can check
with nothing but sha256."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import delete, update

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.services.audit import AuditLog
from govex_server.store import tables as t
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.migrate import migrate
from tests.conftest import Harness
from tests.integration.freeze_helpers import freeze
from tests.integration.helpers import propose, refused
from tests.postgres import create_database
from tests.support import md

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(n: int) -> AuditRecord:
    return AuditRecord(
        at=START + timedelta(seconds=n),
        principal="carol" if n % 2 else "alice",
        principal_kind="human",
        mode="MANUAL",
        rpc="Freeze",
        resource=f"freezes/f{n}",
        etag_before=None,
        etag_after=f'W/"{n}"',
        reason=f"record {n} é",
        details={"n": n, "nested": {"ok": True}},
    )


async def chain_of(store: Store, count: int) -> None:
    for start in range(0, count, 250):

        def unit(uow: UnitOfWork, start: int = start) -> None:
            for n in range(start + 1, min(start + 250, count) + 1):
                uow.audit.append(record(n))

        await store.write(unit)


def verify(url: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "govex_server", "verify-audit", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


async def run(store: Store, statement: object) -> None:
    await store.write(lambda uow: uow.conn.execute(statement))  # type: ignore[call-overload]


async def test_an_untouched_chain_of_1000_verifies(store: Store, database_url: str) -> None:
    await chain_of(store, 1000)
    head = await store.read(lambda uow: uow.audit.head())
    code, out = await asyncio.to_thread(verify, database_url)
    assert code == 0, out
    assert f"1000 records, head hash {head[1]}" in out
    assert head[0] == 1000


LOG = t.audit_log


@pytest.mark.parametrize(
    ("tamper", "first_broken"),
    [
        ("edit", "record 37's content does not match its hash"),
        ("delete_middle", "record 38 follows record 36"),
        ("delete_last", "the chain ends at record 59"),
        ("reorder", "record 20 names previous hash"),
    ],
)
async def test_tampering_is_named_by_verify_audit(
    store: Store, database_url: str, tamper: str, first_broken: str
) -> None:
    await chain_of(store, 60)
    if tamper == "edit":
        await run(store, update(LOG).where(LOG.c.sequence == 37).values(principal="victor"))
    elif tamper == "delete_middle":
        await run(store, delete(LOG).where(LOG.c.sequence == 37))
    elif tamper == "delete_last":
        await run(store, delete(LOG).where(LOG.c.sequence == 60))
    else:  # swap the places of records 20 and 21
        for old, new in ((20, -1), (21, 20), (-1, 21)):
            await run(store, update(LOG).where(LOG.c.sequence == old).values(sequence=new))
    code, out = await asyncio.to_thread(verify, database_url)
    assert code == 1, out
    assert first_broken in out, out


async def test_start_up_logs_a_broken_tail(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, who="carol")
    await propose(h)
    newest = await h.store.read(lambda uow: uow.audit.head())
    await run(h.store, update(LOG).where(LOG.c.sequence == newest[0]).values(principal="victor"))
    with caplog.at_level(logging.ERROR, logger="govex.audit"):
        await h.restart()
    assert f"AUDIT CHAIN BROKEN at record {newest[0]}" in caplog.text
    # It still serves (the operator decides), and verify-audit agrees.
    await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    code, out = await asyncio.to_thread(verify, h.settings.database_url)
    assert code == 1 and f"BROKEN at record {newest[0]}" in out


async def test_list_audit_records_pages_filters_and_can_be_verified_outside(
    harness: Harness,
) -> None:
    h = harness
    for _ in range(3):
        await propose(h, "alice")
    h.clock.advance(timedelta(minutes=1))
    frozen = await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, who="carol")
    records: list[Any] = []
    token = ""
    while True:
        page = await h.gov.ListAuditRecords(
            gov.ListAuditRecordsRequest(page_size=2, page_token=token), metadata=md("audrey")
        )
        records.extend(page.audit_records)
        token = page.next_page_token
        if not token:
            break
    assert len(records) >= 4
    assert page.head_sequence == records[-1].sequence
    assert page.head_hash == records[-1].hash
    # An outside verifier: sha256(previous hash + "\n" + content), from the genesis.
    previous = "0" * 64
    for r in records:
        assert r.previous_hash == previous
        assert hashlib.sha256(f"{previous}\n{r.content}".encode()).hexdigest() == r.hash
        previous = r.hash
    by_carol = await h.gov.ListAuditRecords(
        gov.ListAuditRecordsRequest(principal="carol"), metadata=md("dana")
    )
    assert [r.resource for r in by_carol.audit_records] == [frozen.name]
    about = await h.gov.ListAuditRecords(
        gov.ListAuditRecordsRequest(resource=frozen.name), metadata=md("audrey")
    )
    assert [r.principal for r in about.audit_records] == ["carol"]
    later = await h.gov.ListAuditRecords(
        gov.ListAuditRecordsRequest(start_time=frozen.create_time), metadata=md("audrey")
    )
    assert [r.resource for r in later.audit_records] == [frozen.name]
    before = await h.gov.ListAuditRecords(
        gov.ListAuditRecordsRequest(end_time=frozen.create_time), metadata=md("audrey")
    )
    assert frozen.name not in [r.resource for r in before.audit_records]


async def test_list_audit_records_is_for_admins_and_auditors(harness: Harness) -> None:
    h = harness
    for who in ("victor", "carol", "alice"):
        denied = await refused(
            h.gov.ListAuditRecords(gov.ListAuditRecordsRequest(), metadata=md(who))
        )
        assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    # The auditor reads the audit log and nothing else.
    state = await refused(
        h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("audrey"))
    )
    assert state.code == grpc.StatusCode.PERMISSION_DENIED
    bad = await refused(
        h.gov.ListAuditRecords(gov.ListAuditRecordsRequest(page_token="x"), metadata=md("audrey"))
    )
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in bad.fields


def appending(n: int) -> Callable[[UnitOfWork], None]:
    return lambda uow: uow.audit.append(record(n))


async def test_a_rolled_back_append_leaves_the_chain_whole(store: Store) -> None:
    await chain_of(store, 3)

    def changes_its_mind(uow: UnitOfWork) -> None:
        uow.audit.append(record(4))
        raise ValueError("rolled back after the append")

    with pytest.raises(ValueError):
        await store.write(changes_its_mind)
    # The process's guess of the head is now ahead of the database's.
    await store.write(lambda uow: uow.audit.append(record(5)))
    verdict = await AuditLog(store).verify()
    assert (verdict.intact, verdict.count) == (True, 4), verdict


@pytest.mark.postgres
async def test_two_replicas_appending_at_once_keep_one_chain(pg_base_url: str) -> None:
    url = create_database(pg_base_url, f"t_{uuid.uuid4().hex[:16]}")
    first, second = Store(url), Store(url)
    await migrate(first)
    try:

        async def appends(store: Store, offset: int) -> None:
            for n in range(40):
                await store.write(appending(offset + n))

        await asyncio.gather(appends(first, 0), appends(second, 1000), appends(first, 2000))
        verdict = await AuditLog(second).verify()
        assert (verdict.intact, verdict.count) == (True, 120), verdict
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_a_replica_whose_guess_was_rolled_back_chains_onto_the_real_head(
    pg_base_url: str,
) -> None:
    url = create_database(pg_base_url, f"t_{uuid.uuid4().hex[:16]}")
    first, second = Store(url), Store(url)
    await migrate(first)
    try:
        await first.write(appending(1))

        def changes_its_mind(uow: UnitOfWork) -> None:
            uow.audit.append(record(2))
            raise ValueError("rolled back after the append")

        with pytest.raises(ValueError):
            await first.write(changes_its_mind)
        # The other replica writes record 2 for real: same sequence as the
        # first replica's guess, another hash.
        await second.write(appending(3))
        await first.write(appending(4))
        verdict = await AuditLog(first).verify()
        assert (verdict.intact, verdict.count) == (True, 3), verdict
    finally:
        await first.close()
        await second.close()
