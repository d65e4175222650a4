"""Races decided by the database, state that survives restarts, and the
server's lifecycle (health, migrations)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Connection, func, select

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc, plan_pb2
from govex_server.app import SERVICE_NAMES
from govex_server.store import tables
from govex_server.store.database import Store
from tests.conftest import Harness
from tests.integration.helpers import activate, approved_plan, propose, refused, review
from tests.support import md

ROUNDS = 100
RACERS = 16


async def test_concurrent_approvals_with_one_etag_let_exactly_one_win(harness: Harness) -> None:
    h = harness
    # Separate channels, so the 16 calls really are concurrent HTTP/2 streams
    # on several connections.
    channels = [grpc.aio.insecure_channel(h.target) for _ in range(4)]
    stubs = [governance_service_pb2_grpc.GovernanceServiceStub(c) for c in channels]
    try:
        for round_no in range(ROUNDS):
            reviewed = await review(h, await propose(h, "alice"))
            request = gov.ApprovePlanRequest(name=reviewed.name, etag=reviewed.etag)
            results = await asyncio.gather(
                *(stubs[i % 4].ApprovePlan(request, metadata=md("bob")) for i in range(RACERS)),
                return_exceptions=True,
            )
            ok = [r for r in results if isinstance(r, gov.ApprovePlanResponse)]
            aborted = [
                r
                for r in results
                if isinstance(r, grpc.RpcError) and r.code() == grpc.StatusCode.ABORTED
            ]
            assert len(ok) == 1, (round_no, results)
            assert len(aborted) == RACERS - 1, (round_no, results)
            got = await h.gov.GetPlan(gov.GetPlanRequest(name=reviewed.name), metadata=md("bob"))
            assert got.plan.version == reviewed.version + 1
    finally:
        for channel in channels:
            await channel.close()


async def count_active(store: Store) -> int:
    query = select(func.count()).select_from(tables.plans).where(tables.plans.c.state == "ACTIVE")
    return int(await store.read(lambda uow: uow.conn.execute(query).scalar_one()))


async def test_concurrent_activations_leave_at_most_one_active_plan(harness: Harness) -> None:
    h = harness
    for _ in range(20):
        first, second = await approved_plan(h), await approved_plan(h)
        h.clock.advance(timedelta(hours=25))
        results = await asyncio.gather(
            activate(h, first, "dana", override_cooldown=True, override_reason="race"),
            activate(h, second, "dana", override_cooldown=True, override_reason="race"),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, grpc.RpcError):
                assert result.code() == grpc.StatusCode.ABORTED, result
            else:
                assert isinstance(result, gov.ActivatePlanResponse)
        assert await count_active(h.store) == 1
        listed = await h.gov.ListPlans(
            gov.ListPlansRequest(states=[plan_pb2.PLAN_STATE_ACTIVE]), metadata=md("victor")
        )
        assert len(listed.plans) == 1


async def test_database_itself_refuses_a_second_active_plan(harness: Harness) -> None:
    h = harness
    await activate(h, await approved_plan(h))
    other = await approved_plan(h)
    # Bypass the service: the partial unique index must refuse on its own.
    from govex_server.domain.errors import GovexError

    statement = (
        tables.plans.update()
        .where(tables.plans.c.id == other.name.split("/")[1])
        .values(state="ACTIVE")
    )
    try:
        await h.store.write(lambda uow: uow.conn.execute(statement))
    except GovexError as refused:
        assert refused.reason == "CONFLICT"  # the store's name for an IntegrityError
    else:
        raise AssertionError("a second ACTIVE plan was accepted by the database")
    assert await count_active(h.store) == 1


async def test_cooldown_survives_a_restart(harness: Harness) -> None:
    h = harness
    await activate(h, await approved_plan(h))
    h.clock.advance(timedelta(hours=1))
    await h.restart()
    status = (
        await h.gov.GetCooldownStatus(gov.GetCooldownStatusRequest(), metadata=md("victor"))
    ).cooldown
    assert not status.publishing_allowed
    assert status.remaining.ToTimedelta() == timedelta(hours=23)
    waiting = await approved_plan(h)
    error = await refused(activate(h, waiting))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "COOLDOWN")
    assert error.retry_delay == timedelta(hours=23)
    # An admin may override, with a reason; it is audited.
    result = await activate(
        h, waiting, "dana", override_cooldown=True, override_reason="incident 7: de-risk"
    )
    assert result.plan.cooldown_overridden
    records = await h.store.read(lambda uow: uow.audit.for_resource(waiting.name))
    assert records[-1].reason == "cooldown override: incident 7: de-risk"
    assert records[-1].details["cooldown_override"] is True
    assert records[-1].principal == "dana"


async def test_cooldown_ends_on_time(harness: Harness) -> None:
    h = harness
    await activate(h, await approved_plan(h))
    waiting = await approved_plan(h)
    h.clock.advance(timedelta(hours=24))
    assert (await activate(h, waiting)).plan.state == plan_pb2.PLAN_STATE_ACTIVE


async def test_health_is_serving_then_not_serving_during_shutdown(harness: Harness) -> None:
    h = harness
    assert h.channel is not None
    health = health_pb2_grpc.HealthStub(h.channel)
    for name in ("", *SERVICE_NAMES):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[0]))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    assert h.running is not None
    stopping = asyncio.create_task(h.running.stop(2.0))
    update = await asyncio.wait_for(watch.read(), 5)
    assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping
    h.running = None


async def test_migrations_create_exactly_the_declared_schema(harness: Harness) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, tables.metadata))

    differences = await harness.store.read(lambda uow: diff(uow.conn))
    assert differences == []
