"""Helpers shared by the tests: tokens, metadata, store snapshots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.store import tables
from govex_server.store.database import Store, UnitOfWork

# The development principals (config/dev-principals.toml): dev-<name>-token.
PRINCIPALS_FILE = "config/dev-principals.toml"


def token(name: str) -> str:
    """The development token of ``name``."""
    return f"dev-{name}-token"


def md(name: str) -> tuple[tuple[str, str], ...]:
    """Call metadata authenticating as ``name``."""
    return (("authorization", f"Bearer {token(name)}"),)


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: two equal snapshots mean nothing was written."""

    def unit(uow: UnitOfWork) -> dict[str, list[tuple[Any, ...]]]:
        result: dict[str, list[tuple[Any, ...]]] = {}
        for table in tables.metadata.sorted_tables:
            rows = uow.conn.execute(select(table))
            result[table.name] = sorted((tuple(r) for r in rows.all()), key=repr)
        return result

    return await store.read(unit)


async def activated(g: Any, request: gov.ProposePlanRequest, comment: str = "") -> Any:
    """The plan of ``request`` through a GovernanceService stub ``g``:
    proposed by alice, reviewed and approved by bob, activated by carol
    (the MANUAL walk); the ACTIVE plan."""
    plan = (await g.ProposePlan(request, metadata=md("alice"))).plan
    plan = (
        await g.ReviewPlan(
            gov.ReviewPlanRequest(name=plan.name, etag=plan.etag, comment=comment),
            metadata=md("bob"),
        )
    ).plan
    plan = (
        await g.ApprovePlan(
            gov.ApprovePlanRequest(name=plan.name, etag=plan.etag), metadata=md("bob")
        )
    ).plan
    return (
        await g.ActivatePlan(
            gov.ActivatePlanRequest(name=plan.name, etag=plan.etag), metadata=md("carol")
        )
    ).plan
