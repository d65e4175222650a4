"""Freeze calls and stream readers used by the integration tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from google.protobuf import duration_pb2

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import events_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from tests.conftest import Harness
from tests.support import md


def ttl(minutes: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(timedelta(minutes=minutes))
    return d


async def freeze(
    h: Harness,
    kind: freeze_pb2.FreezeType.ValueType = freeze_pb2.FREEZE_TYPE_FULL_FREEZE,
    minutes: float = 60,
    who: str = "carol",
    reason: str = "test freeze",
    **fields: Any,
) -> freeze_pb2.Freeze:
    response = await h.gov.Freeze(
        gov.FreezeRequest(type=kind, reason=reason, ttl=ttl(minutes), **fields), metadata=md(who)
    )
    return response.freeze


async def unfreeze(h: Harness, name: str, who: str = "carol") -> list[freeze_pb2.Freeze]:
    response = await h.gov.Unfreeze(
        gov.UnfreezeRequest(name=name, reason="lifted in test"), metadata=md(who)
    )
    return list(response.freezes)


FREEZE_KINDS = {"FREEZE_CREATED", "FREEZE_LIFTED", "FREEZE_EXPIRED"}


async def stored_events(h: Harness, kinds: set[str] | None = None) -> list[tuple[int, str]]:
    rows = await h.store.read(
        lambda uow: uow.events.after(0, sorted(kinds) if kinds else None, 100_000)
    )
    return [(r.sequence, r.kind) for r in rows]


async def wait_for(condition: Any, within: float = 5.0) -> None:
    """Polls an async predicate until it holds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def event_of(message: Any) -> events_pb2.GovernanceEvent | None:
    return message.event if message.WhichOneof("message") == "event" else None
