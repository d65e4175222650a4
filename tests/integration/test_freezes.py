"""Freezes through gRPC: create, lift, list, check, expire on time (also
across a restart), and bad input refused with nothing written."""

from __future__ import annotations

from datetime import UTC, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from tests.conftest import Harness
from tests.integration.freeze_helpers import (
    FREEZE_KINDS,
    freeze,
    stored_events,
    ttl,
    unfreeze,
    wait_for,
)
from tests.integration.helpers import refused
from tests.support import md, snapshot

FT = freeze_pb2
OPS = {
    "PURCHASE": FT.OPERATION_PURCHASE,
    "SELL_TO_STABLES": FT.OPERATION_SELL_TO_STABLES,
    "ROTATION": FT.OPERATION_ROTATION,
    "HEDGE": FT.OPERATION_HEDGE,
    "REBALANCING": FT.OPERATION_REBALANCING,
}


async def check(h: Harness, op: int) -> freeze_pb2.OperationVerdict:
    response = await h.gov.CheckOperation(
        gov.CheckOperationRequest(operation=op),  # type: ignore[arg-type]
        metadata=md("victor"),
    )
    return response.verdict


async def test_freeze_check_and_unfreeze(harness: Harness) -> None:
    h = harness
    s3 = await freeze(h, FT.FREEZE_TYPE_S3_ALERT_FREEZE, minutes=30, reason="risk alert")
    assert s3.name.startswith("freezes/")
    assert s3.actor == "carol"
    assert s3.expire_time.ToDatetime(UTC) - s3.create_time.ToDatetime(UTC) == timedelta(minutes=30)
    purchase = await check(h, FT.OPERATION_PURCHASE)
    assert not purchase.allowed
    assert [f.name for f in purchase.blocking_freezes] == [s3.name]
    assert purchase.blocking_freezes[0].expire_time == s3.expire_time
    assert (await check(h, FT.OPERATION_SELL_TO_STABLES)).allowed
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    assert [f.name for f in state.active_freezes] == [s3.name]
    verdicts = {v.operation: v.allowed for v in state.operation_verdicts}
    assert verdicts == {
        FT.OPERATION_PURCHASE: False,
        FT.OPERATION_SELL_TO_STABLES: True,
        FT.OPERATION_ROTATION: True,
        FT.OPERATION_HEDGE: True,
        FT.OPERATION_REBALANCING: False,
    }
    lifted = await unfreeze(h, s3.name)
    assert [f.end for f in lifted] == [FT.FREEZE_END_LIFTED]
    assert lifted[0].ended_by == "carol"
    assert (await check(h, FT.OPERATION_PURCHASE)).allowed
    kinds = [k for _, k in await stored_events(h, FREEZE_KINDS)]
    assert kinds == ["FREEZE_CREATED", "FREEZE_LIFTED"]
    audit = await h.store.read(lambda uow: uow.audit.for_resource(s3.name))
    assert [r.rpc for r in audit] == ["Freeze", "Unfreeze"]


async def test_several_freezes_and_unfreeze_all(harness: Harness) -> None:
    h = harness
    error_freeze = await freeze(h, FT.FREEZE_TYPE_ERROR_FREEZE)
    s3 = await freeze(h, FT.FREEZE_TYPE_S3_ALERT_FREEZE)
    rotation = await check(h, FT.OPERATION_ROTATION)
    assert not rotation.allowed
    assert [f.name for f in rotation.blocking_freezes] == [error_freeze.name]
    assert (await check(h, FT.OPERATION_SELL_TO_STABLES)).allowed
    listed = await h.gov.ListFreezes(gov.ListFreezesRequest(), metadata=md("victor"))
    assert [f.name for f in listed.freezes] == [s3.name, error_freeze.name]
    response = await h.gov.Unfreeze(
        gov.UnfreezeRequest(all=True, reason="all clear"), metadata=md("carol")
    )
    assert {f.name for f in response.freezes} == {s3.name, error_freeze.name}
    active = await h.gov.ListFreezes(gov.ListFreezesRequest(), metadata=md("victor"))
    assert not active.freezes
    history = await h.gov.ListFreezes(
        gov.ListFreezesRequest(include_ended=True, types=[FT.FREEZE_TYPE_ERROR_FREEZE]),
        metadata=md("victor"),
    )
    assert [f.name for f in history.freezes] == [error_freeze.name]
    assert history.freezes[0].end == FT.FREEZE_END_LIFTED


async def test_expiry_fires_on_time_with_no_request(harness: Harness) -> None:
    h = harness
    full = await freeze(h, minutes=10)
    h.clock.advance(timedelta(minutes=9))
    await h.channel_idle(0.2)
    assert [k for _, k in await stored_events(h, FREEZE_KINDS)] == ["FREEZE_CREATED"]
    h.clock.advance(timedelta(minutes=1))

    async def expired() -> bool:
        return [k for _, k in await stored_events(h, FREEZE_KINDS)] == [
            "FREEZE_CREATED",
            "FREEZE_EXPIRED",
        ]

    await wait_for(expired)
    stored = await h.store.read(lambda uow: uow.freezes.get(full.name.split("/")[1]))
    assert stored is not None
    assert stored.end is not None
    assert stored.end.value == "EXPIRED"
    assert stored.end_time == full.expire_time.ToDatetime(UTC)


async def test_a_freeze_past_its_expiry_never_blocks(harness: Harness) -> None:
    h = harness
    await freeze(h, minutes=5)
    assert h.running is not None
    # Stop the expiry task: the checks must still compare with the clock.
    for task in h.running.tasks:
        if task.get_name() == "freeze-expiry":
            task.cancel()
    h.clock.advance(timedelta(minutes=6))
    assert (await check(h, FT.OPERATION_PURCHASE)).allowed
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    assert not state.active_freezes


async def test_expiry_across_a_restart(harness: Harness) -> None:
    h = harness
    await freeze(h, minutes=10)
    await h.stop()
    h.clock.advance(timedelta(hours=1))
    await h.start()
    # Expired at start-up, before any request.
    assert [k for _, k in await stored_events(h, FREEZE_KINDS)] == [
        "FREEZE_CREATED",
        "FREEZE_EXPIRED",
    ]
    assert (await check(h, FT.OPERATION_PURCHASE)).allowed


def past() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(1_000_000)
    return ts


def seconds(value: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=value)


BAD: dict[str, tuple[gov.FreezeRequest, str, grpc.StatusCode, str]] = {
    "ttl_zero": (
        gov.FreezeRequest(type=FT.FREEZE_TYPE_FULL_FREEZE, reason="x", ttl=seconds(0)),
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "ttl",
    ),
    "ttl_negative": (
        gov.FreezeRequest(type=FT.FREEZE_TYPE_FULL_FREEZE, reason="x", ttl=seconds(-60)),
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "ttl",
    ),
    "ttl_beyond_7_days": (
        gov.FreezeRequest(type=FT.FREEZE_TYPE_FULL_FREEZE, reason="x", ttl=seconds(8 * 86400)),
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "ttl",
    ),
    "expire_time_in_the_past": (
        gov.FreezeRequest(type=FT.FREEZE_TYPE_FULL_FREEZE, reason="x", expire_time=past()),
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "expire_time",
    ),
    "unknown_type": (
        gov.FreezeRequest(type=17, reason="x", ttl=ttl(5)),  # type: ignore[arg-type]
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "type",
    ),
    "unspecified_type": (
        gov.FreezeRequest(reason="x", ttl=ttl(5)),
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "type",
    ),
    "missing_reason": (
        gov.FreezeRequest(type=FT.FREEZE_TYPE_FULL_FREEZE, ttl=ttl(5)),
        "carol",
        grpc.StatusCode.INVALID_ARGUMENT,
        "reason",
    ),
    "viewer_freezing": (
        gov.FreezeRequest(type=FT.FREEZE_TYPE_FULL_FREEZE, reason="x", ttl=ttl(5)),
        "victor",
        grpc.StatusCode.PERMISSION_DENIED,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_freeze_is_refused_and_nothing_written(harness: Harness, case: str) -> None:
    h = harness
    request, who, code, field = BAD[case]
    await h.settle()
    before = await snapshot(h.store)
    error = await refused(h.gov.Freeze(request, metadata=md(who)))
    assert error.code == code
    if field:
        assert field in error.fields
    assert await snapshot(h.store) == before


async def test_bad_unfreeze_and_check(harness: Harness) -> None:
    h = harness
    ended = await freeze(h)
    await unfreeze(h, ended.name)
    await h.settle()
    before = await snapshot(h.store)
    missing = await refused(
        h.gov.Unfreeze(
            gov.UnfreezeRequest(name="freezes/01HZZZZZZZZZZZZZZZZZZZZZZZ", reason="x"),
            metadata=md("carol"),
        )
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    again = await refused(
        h.gov.Unfreeze(gov.UnfreezeRequest(name=ended.name, reason="x"), metadata=md("carol"))
    )
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FREEZE_ENDED")
    malformed = await refused(
        h.gov.Unfreeze(gov.UnfreezeRequest(name="freeze/1", reason="x"), metadata=md("carol"))
    )
    assert "name" in malformed.fields
    unknown_op = await refused(
        h.gov.CheckOperation(
            gov.CheckOperationRequest(operation=42),  # type: ignore[arg-type]
            metadata=md("victor"),
        )
    )
    assert (unknown_op.code, unknown_op.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["operation"])
    assert await snapshot(h.store) == before


async def test_idempotent_freeze(harness: Harness) -> None:
    h = harness
    first = await freeze(h, request_id="f-1")
    again = await freeze(h, request_id="f-1")
    assert again == first
    assert len(await stored_events(h, FREEZE_KINDS)) == 1
