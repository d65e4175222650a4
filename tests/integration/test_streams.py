"""Resumable event streams: replay then live with no gap or duplicate,
filters, heartbeats, retention, slow subscribers, and replicas."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import events_pb2, governance_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2 as gov
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import (
    FREEZE_KINDS,
    event_of,
    freeze,
    stored_events,
    unfreeze,
    wait_for,
)
from tests.integration.helpers import propose, refused
from tests.support import md

EK = events_pb2


async def subscribed(h: Harness, count: int = 1) -> None:
    assert h.running is not None
    running = h.running

    async def ready() -> bool:
        return running.bus.subscriber_count >= count

    await wait_for(ready)


async def read_events(
    call: Any, count: int, within: float = 10
) -> list[events_pb2.GovernanceEvent]:
    events: list[events_pb2.GovernanceEvent] = []

    async def collect() -> None:
        while len(events) < count:
            message = await call.read()
            assert message is not grpc.aio.EOF
            event = event_of(message)
            if event is not None:
                events.append(event)

    await asyncio.wait_for(collect(), within)
    return events


async def test_live_freeze_event_reaches_a_subscriber(harness: Harness) -> None:
    h = harness
    call = h.gov.WatchFreezeEvents(gov.WatchFreezeEventsRequest(), metadata=md("victor"))
    await subscribed(h)
    created = await freeze(h, freeze_pb2.FREEZE_TYPE_ERROR_FREEZE)
    [event] = await read_events(call, 1)
    assert event.kind == EK.EVENT_KIND_FREEZE_CREATED
    assert event.freeze == created
    assert event.resource == created.name
    assert event.actor == "carol"
    assert event.sequence == (await stored_events(h, FREEZE_KINDS))[-1][0]
    call.cancel()


async def test_replay_then_live_without_gap_or_duplicate(harness: Harness) -> None:
    h = harness
    names = []
    for i in range(12):
        names.append((await freeze(h)).name)
        if i % 3 == 0:
            await propose(h)  # plan events interleave; the freeze stream skips them
    freeze_seqs = [s for s, k in await stored_events(h) if k.startswith("FREEZE_")]
    resume_after = freeze_seqs[4]
    call = h.gov.WatchFreezeEvents(
        gov.WatchFreezeEventsRequest(after_sequence=resume_after), metadata=md("victor")
    )
    # Writes race the replay on purpose.
    producer = asyncio.create_task(lift_all(h, names))
    expected_total = len(freeze_seqs) - 5 + len(names)
    events = await read_events(call, expected_total, within=20)
    await producer
    sequences = [e.sequence for e in events]
    stored = [s for s, k in await stored_events(h) if k.startswith("FREEZE_") and s > resume_after]
    assert sequences == stored
    assert len(set(sequences)) == len(sequences)
    call.cancel()


async def lift_all(h: Harness, names: list[str]) -> None:
    for name in names:
        await unfreeze(h, name)


async def test_governance_stream_filters_by_kind(harness: Harness) -> None:
    h = harness
    call = h.gov.WatchGovernanceEvents(
        gov.WatchGovernanceEventsRequest(kinds=[EK.EVENT_KIND_PLAN_PROPOSED]),
        metadata=md("victor"),
    )
    await subscribed(h)
    await freeze(h)
    plan = await propose(h)
    [event] = await read_events(call, 1)
    assert event.kind == EK.EVENT_KIND_PLAN_PROPOSED
    assert event.plan == plan
    call.cancel()


async def test_idle_stream_carries_heartbeats(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(heartbeat_seconds=0.2)
    await freeze(h)
    call = h.gov.WatchFreezeEvents(gov.WatchFreezeEventsRequest(), metadata=md("victor"))
    # The first message says where "new" starts (sent at once, idle or not).
    first: Any = await asyncio.wait_for(call.read(), 30)
    assert first.WhichOneof("message") == "heartbeat"
    # Then, with nothing new to send, heartbeats keep coming, and they come
    # to carry the newest sequence of the log (the policy's reaction to the
    # freeze may land after the stream opened, on a loaded machine).
    beats = 0
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        message: Any = await asyncio.wait_for(call.read(), 30)
        assert message.WhichOneof("message") == "heartbeat"
        beats += 1
        assert message.heartbeat.current_sequence >= first.heartbeat.current_sequence
        newest = (await stored_events(h))[-1][0]
        if message.heartbeat.current_sequence == newest:
            break
        assert asyncio.get_running_loop().time() < deadline, "heartbeats never caught up"
    assert beats >= 1
    call.cancel()


async def test_bad_resume_points(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(event_retention_hours=1, event_retention_keep=0)
    for _ in range(5):
        await freeze(h, minutes=600)  # outlives the clock jump below
    await h.settle()
    newest = (await stored_events(h))[-1][0]
    negative = await refused(
        h.gov.WatchFreezeEvents(
            gov.WatchFreezeEventsRequest(after_sequence=-1), metadata=md("victor")
        ).read()
    )
    assert (negative.code, negative.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["after_sequence"],
    )
    ahead = await refused(
        h.gov.WatchFreezeEvents(
            gov.WatchFreezeEventsRequest(after_sequence=99), metadata=md("victor")
        ).read()
    )
    assert (ahead.code, ahead.reason) == (grpc.StatusCode.OUT_OF_RANGE, "SEQUENCE_AHEAD")
    assert int(ahead.metadata["newestSequence"]) >= newest
    h.clock.advance(timedelta(hours=2))
    recent = await freeze(h, minutes=600)  # recent: retained
    await h.settle()
    assert h.running is not None
    old = [seq for seq, _ in await stored_events(h) if seq <= newest]
    assert await h.running.retention.run_once() >= len(old)
    kept = await stored_events(h)
    oldest = kept[0][0]
    assert oldest > newest
    gone = await refused(
        h.gov.WatchFreezeEvents(
            gov.WatchFreezeEventsRequest(after_sequence=2), metadata=md("victor")
        ).read()
    )
    assert (gone.code, gone.reason) == (grpc.StatusCode.OUT_OF_RANGE, "HISTORY_EXPIRED")
    assert gone.metadata["oldestSequence"] == str(oldest)
    # Resuming right before the oldest retained event is fine.
    call = h.gov.WatchFreezeEvents(
        gov.WatchFreezeEventsRequest(after_sequence=oldest - 1), metadata=md("victor")
    )
    [event] = await read_events(call, 1)
    assert event.freeze.name == recent.name
    call.cancel()


async def test_slow_subscriber_is_closed_while_others_keep_receiving(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(subscriber_queue_size=20)
    # The slow client never reads; without BDP probing its window stays small,
    # so the server's send blocks early and its queue fills.
    slow_channel = grpc.aio.insecure_channel(h.target, options=[("grpc.http2.bdp_probe", 0)])
    slow = governance_service_pb2_grpc.GovernanceServiceStub(slow_channel).WatchFreezeEvents(
        gov.WatchFreezeEventsRequest(), metadata=md("victor")
    )
    fast = h.gov.WatchFreezeEvents(gov.WatchFreezeEventsRequest(), metadata=md("victor"))
    await subscribed(h, 2)
    total = 300
    reader = asyncio.create_task(read_events(fast, total, within=60))
    for _ in range(total):
        await freeze(h, reason="r" * 1000)
    received = await reader
    assert [e.sequence for e in received] == [s for s, _ in await stored_events(h, FREEZE_KINDS)]
    assert h.running is not None
    assert h.running.bus.dropped_subscribers == 1
    seen: list[int] = []
    error = None
    try:
        while True:
            message: Any = await asyncio.wait_for(slow.read(), 10)
            if message is grpc.aio.EOF:
                break
            if message.HasField("event"):
                seen.append(message.event.sequence)
    except grpc.RpcError as exc:
        from govex_client.errors import GovexRpcError

        error = GovexRpcError.from_rpc_error(exc)
    assert error is not None
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_TOO_SLOW")
    assert 0 < len(seen) < total
    # The resume point is exactly the last event the client received: resuming
    # from it neither repeats nor skips one.
    assert int(error.metadata["lastSequence"]) == seen[-1]
    fast.cancel()
    await slow_channel.close()


@pytest.mark.postgres
async def test_replicas_deliver_each_others_events(
    harness_factory: HarnessFactory, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    a = await harness_factory()
    b = await harness_factory()
    assert b.running is not None and b.running.listener is not None
    await asyncio.wait_for(b.running.listener.connected.wait(), 5)
    call = b.gov.WatchFreezeEvents(gov.WatchFreezeEventsRequest(), metadata=md("victor"))
    await subscribed(b)
    # B caches its governance state; A's write must refresh it.
    before = (
        await b.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    assert not before.active_freezes
    loop = asyncio.get_running_loop()
    started = loop.time()
    created = await freeze(a, minutes=10)
    [event] = await read_events(call, 1, within=1.0)
    assert loop.time() - started < 1.0
    assert event.freeze.name == created.name

    async def b_sees_it() -> bool:
        state = (
            await b.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
        ).state
        return [f.name for f in state.active_freezes] == [created.name]

    await wait_for(b_sees_it, within=1.0)
    # Both replicas run expiry; the FREEZE_EXPIRED event is written once.
    a.clock.advance(timedelta(minutes=10))
    [expired] = await read_events(call, 1, within=5)
    assert expired.kind == EK.EVENT_KIND_FREEZE_EXPIRED
    await asyncio.sleep(0.5)
    kinds = [k for _, k in await stored_events(a, FREEZE_KINDS)]
    assert kinds == ["FREEZE_CREATED", "FREEZE_EXPIRED"]
    call.cancel()


@pytest.mark.postgres
async def test_a_live_stream_starts_after_what_another_replica_committed(
    harness_factory: HarnessFactory, database_url: str
) -> None:
    """The first heartbeat of a live stream never lags an event already
    committed, even by a replica this one has not heard from yet."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    a = await harness_factory()
    b = await harness_factory(event_poll_seconds=60)
    assert b.running is not None
    # B hears nothing of A: no LISTEN connection, a poll a minute away.
    for task in b.running.tasks:
        if task.get_name() == "pg-listen":
            task.cancel()
    await freeze(a, minutes=10)
    newest = max(s for s, _ in await stored_events(a, FREEZE_KINDS))
    assert b.running.bus.current_sequence < newest
    call = b.gov.WatchFreezeEvents(gov.WatchFreezeEventsRequest(), metadata=md("victor"))
    first: Any = await asyncio.wait_for(call.read(), 5)
    assert first.heartbeat.current_sequence >= newest
    call.cancel()


async def test_streams_resuming_together_share_their_replay_reads(harness: Harness) -> None:
    h = harness
    for i in range(5):
        await freeze(h, reason=f"history {i}")
    stored = [s for s, _ in await stored_events(h, FREEZE_KINDS)]
    assert h.running is not None
    pages = h.running.bus.replay_pages
    reads_before = pages.reads
    # "Together" made exact on a loaded machine too: the store's reads wait
    # until all 40 streams have asked for the page.
    asked: list[object] = []
    all_asked = asyncio.Event()
    ask, read = pages.get, pages._read

    async def counted(key: Any) -> Any:
        asked.append(key)
        if len(asked) == 40:
            all_asked.set()
        return await ask(key)

    async def held(key: Any) -> Any:
        await asyncio.wait_for(all_asked.wait(), 60)
        return await read(key)

    pages.get, pages._read = counted, held  # type: ignore[method-assign]
    calls = [
        h.gov.WatchFreezeEvents(
            gov.WatchFreezeEventsRequest(after_sequence=stored[0]), metadata=md("victor")
        )
        for _ in range(40)
    ]
    received = await asyncio.gather(*(read_events(call, 4) for call in calls))
    # Every stream gets exactly the history after its resume point...
    assert all([e.sequence for e in events] == stored[1:] for events in received)
    # ...from at most two reads: the one the first stream started, and the
    # next one, which every stream that came while it ran shares.
    assert 1 <= pages.reads - reads_before <= 2
    for call in calls:
        call.cancel()
