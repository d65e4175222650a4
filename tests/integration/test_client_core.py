"""The client's call machinery against a scripted gRPC server (a real
channel and transport; the server answers what each test scripts): a
mutation carries one request_id over all its retries, RetryInfo sets the
wait, what is not retryable is raised at once, and a cut stream resumes
after the last event it delivered, never repeating one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import events_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex_client import ClientConfig, GovexClient, GovexRpcError, RetryPolicy, SyncGovexClient

SERVICE = "govex.governance.v1.GovernanceService"


def _status(code: grpc.StatusCode, retry_seconds: int | None = None) -> tuple[Any, ...]:
    status = status_pb2.Status(code=code.value[0], message="scripted")
    if retry_seconds is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_seconds))
        status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


class Scripted:
    """A GovernanceService whose Freeze fails as ``failures`` says, and
    whose WatchFreezeEvents plays ``streams`` (one list per call)."""

    def __init__(self) -> None:
        self.failures: list[tuple[grpc.StatusCode, int | None]] = []
        self.freeze_requests: list[gov.FreezeRequest] = []
        self.streams: list[tuple[list[int], grpc.StatusCode | None]] = []
        self.watch_requests: list[gov.WatchFreezeEventsRequest] = []

    async def freeze(self, request: gov.FreezeRequest, context: Any) -> gov.FreezeResponse:
        self.freeze_requests.append(request)
        if self.failures:
            code, retry = self.failures.pop(0)
            await context.abort(code, "scripted", trailing_metadata=_status(code, retry))
        return gov.FreezeResponse(freeze=freeze_pb2.Freeze(name="freezes/1", reason=request.reason))

    async def watch(
        self, request: gov.WatchFreezeEventsRequest, context: Any
    ) -> AsyncIterator[gov.WatchFreezeEventsResponse]:
        self.watch_requests.append(request)
        sequences, ending = self.streams.pop(0)
        for sequence in sequences:
            yield gov.WatchFreezeEventsResponse(event=events_pb2.GovernanceEvent(sequence=sequence))
        if ending is not None:
            await context.abort(ending, "cut", trailing_metadata=_status(ending))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    script = Scripted()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Freeze": grpc.unary_unary_rpc_method_handler(
            script.freeze,
            request_deserializer=gov.FreezeRequest.FromString,
            response_serializer=gov.FreezeResponse.SerializeToString,
        ),
        "WatchFreezeEvents": grpc.unary_stream_rpc_method_handler(
            script.watch,
            request_deserializer=gov.WatchFreezeEventsRequest.FromString,
            response_serializer=gov.WatchFreezeEventsResponse.SerializeToString,
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield script, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def _client(target: str, waits: list[float], attempts: int = 4) -> GovexClient:
    client = GovexClient(ClientConfig(target=target, retry=RetryPolicy(attempts=attempts)))

    async def record(seconds: float) -> None:
        waits.append(seconds)

    client.sleep = record  # the waits are asserted, not slept
    return client


async def test_a_mutation_keeps_one_request_id_over_its_retries(
    scripted: tuple[Scripted, str],
) -> None:
    script, target = scripted
    script.failures = [
        (grpc.StatusCode.UNAVAILABLE, None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None),
    ]
    waits: list[float] = []
    async with _client(target, waits) as client:
        made = await client.freeze(freeze_pb2.FREEZE_TYPE_FULL_FREEZE, "stop")
    assert made.name == "freezes/1"
    ids = [r.request_id for r in script.freeze_requests]
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0], ids  # generated once, sent thrice
    assert len(waits) == 2 and all(0 <= w <= 0.4 for w in waits), waits  # jittered backoff


async def test_retry_info_sets_the_wait_and_other_codes_are_not_retried(
    scripted: tuple[Scripted, str],
) -> None:
    script, target = scripted
    script.failures = [(grpc.StatusCode.RESOURCE_EXHAUSTED, 3)]
    waits: list[float] = []
    async with _client(target, waits) as client:
        await client.freeze(freeze_pb2.FREEZE_TYPE_FULL_FREEZE, "stop", request_id="mine")
        assert [r.request_id for r in script.freeze_requests] == ["mine", "mine"]
        assert len(waits) == 1 and 3 <= waits[0] <= 3.3, waits  # the server's delay, +10% at most
        # RESOURCE_EXHAUSTED without RetryInfo, and a refusal: raised at once.
        for code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION):
            script.failures = [(code, None)]
            script.freeze_requests.clear()
            with pytest.raises(GovexRpcError) as refused:
                await client.freeze(freeze_pb2.FREEZE_TYPE_FULL_FREEZE, "stop")
            assert refused.value.code is code
            assert len(script.freeze_requests) == 1


async def test_the_last_attempt_gives_up_with_the_error(scripted: tuple[Scripted, str]) -> None:
    script, target = scripted
    script.failures = [(grpc.StatusCode.UNAVAILABLE, None)] * 3
    async with _client(target, [], attempts=3) as client:
        with pytest.raises(GovexRpcError) as down:
            await client.freeze(freeze_pb2.FREEZE_TYPE_FULL_FREEZE, "stop")
    assert down.value.code is grpc.StatusCode.UNAVAILABLE
    assert len(script.freeze_requests) == 3


async def test_a_cut_stream_resumes_after_the_last_event_without_repeating(
    scripted: tuple[Scripted, str],
) -> None:
    script, target = scripted
    script.streams = [
        ([1, 2, 3], grpc.StatusCode.UNAVAILABLE),  # a restart
        ([3, 4], grpc.StatusCode.RESOURCE_EXHAUSTED),  # 3 again: must not be delivered twice
        ([5], None),  # the server ends the stream
    ]
    waits: list[float] = []
    async with _client(target, waits) as client:
        seen = [m.event.sequence async for m in client.watch_freeze_events(from_oldest=True)]
    assert seen == [1, 2, 3, 4, 5]
    assert [(r.after_sequence, r.from_oldest) for r in script.watch_requests] == [
        (0, True),
        (3, False),
        (4, False),
    ]
    assert len(waits) == 2


async def test_a_stream_gives_up_only_when_told_to(scripted: tuple[Scripted, str]) -> None:
    script, target = scripted
    script.streams = [([], grpc.StatusCode.UNAVAILABLE)] * 3
    client = GovexClient(ClientConfig(target=target, retry=RetryPolicy(stream_attempts=3)))
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    client.sleep = record
    async with client:
        with pytest.raises(GovexRpcError) as down:
            _ = [m async for m in client.watch_freeze_events()]
    assert down.value.code is grpc.StatusCode.UNAVAILABLE
    assert len(script.watch_requests) == 3 and len(waits) == 2


async def test_a_stream_refused_for_good_is_raised(scripted: tuple[Scripted, str]) -> None:
    script, target = scripted
    script.streams = [([1], grpc.StatusCode.PERMISSION_DENIED)]
    async with _client(target, []) as client:
        with pytest.raises(GovexRpcError) as refused:
            _ = [m async for m in client.watch_freeze_events()]
    assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert len(script.watch_requests) == 1


async def test_the_sync_client_makes_the_same_calls(scripted: tuple[Scripted, str]) -> None:
    script, target = scripted
    script.failures = [(grpc.StatusCode.UNAVAILABLE, None)]

    def sync_code() -> None:  # a program without an event loop (its own thread here)
        with SyncGovexClient(ClientConfig(target=target)) as client:
            made = client.freeze(freeze_pb2.FREEZE_TYPE_FULL_FREEZE, "from sync code")
            assert made.reason == "from sync code"
            with pytest.raises(AttributeError, match="streams are async only"):
                client.watch_freeze_events()

    await asyncio.to_thread(sync_code)
    ids = [r.request_id for r in script.freeze_requests]
    assert len(ids) == 2 and ids[0] == ids[1] != ""
