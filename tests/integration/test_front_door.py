"""What every call meets before a handler: identity before the body is
parsed, range checks of every Timestamp and Duration, no NUL characters on
any store, stream limits per connection and per principal, capability checks
of exchanges, the retention of request_ids, and principals reloaded while
serving."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet
from google.protobuf import duration_pb2, timestamp_pb2

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2, signals_pb2
from govex_client.errors import GovexRpcError
from govex_server.api.auth import token_sha256
from govex_server.api.transport import MAX_REQUEST_BYTES
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import wait_for
from tests.integration.helpers import refused
from tests.integration.test_connect_exchange import request as connect_request
from tests.support import PRINCIPALS_FILE, md, snapshot

C = grpc.StatusCode
GOV = "/govex.governance.v1.GovernanceService"


async def raw_call(h: Harness, method: str, body: bytes, metadata: Any = ()) -> GovexRpcError:
    assert h.channel is not None
    call: Any = h.channel.unary_unary(f"{GOV}/{method}")
    return await refused(call(body, metadata=metadata))


async def test_the_body_of_an_unauthenticated_call_is_never_parsed(harness: Harness) -> None:
    h = harness
    junk = b"\x0a\xff\xff\xff\x0f" + b"\xff" * (3_900_000)  # undecodable, 3.9 MB
    for _ in range(5):
        anonymous = await raw_call(h, "ProposePlan", junk)
        assert (anonymous.code, anonymous.reason) == (C.UNAUTHENTICATED, "MISSING_CREDENTIALS")
    wrong = await raw_call(h, "ProposePlan", junk, (("authorization", "Bearer guess"),))
    assert (wrong.code, wrong.reason) == (C.UNAUTHENTICATED, "UNKNOWN_TOKEN")
    # With a token the same body is parsed, and refused as what it is.
    known = await raw_call(h, "ProposePlan", junk, md("alice"))
    assert (known.code, known.reason) == (C.INVALID_ARGUMENT, "UNDECODABLE_REQUEST")


async def test_a_request_over_4_mib_is_refused(harness: Harness) -> None:
    error = await raw_call(harness, "ProposePlan", b"\x00" * (MAX_REQUEST_BYTES + 1), md("alice"))
    assert error.code == C.RESOURCE_EXHAUSTED


def _duration(seconds: int, nanos: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def _time(seconds: int, nanos: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


OPERATOR_FREEZE: dict[str, Any] = {"type": freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, "reason": "r"}
# Sent as binary protobuf: the JSON parser of a client would refuse them first.
BAD_TIMES = {
    "ttl_nanos_of_the_wrong_sign": (
        "Freeze",
        gov.FreezeRequest(**OPERATOR_FREEZE, ttl=_duration(600, -5)),
        "ttl",
    ),
    "ttl_nanos_beyond_a_second": (
        "Freeze",
        gov.FreezeRequest(**OPERATOR_FREEZE, ttl=_duration(600, 1_000_000_000)),
        "ttl",
    ),
    "ttl_beyond_protobuf_range": (
        "Freeze",
        gov.FreezeRequest(**OPERATOR_FREEZE, ttl=_duration(10**14, 0)),
        "ttl",
    ),
    "expire_time_negative_nanos": (
        "Freeze",
        gov.FreezeRequest(**OPERATOR_FREEZE, expire_time=_time(1_780_000_000, -1)),
        "expire_time",
    ),
    "expire_time_past_year_9999": (
        "Freeze",
        gov.FreezeRequest(**OPERATOR_FREEZE, expire_time=_time(2**40, 0)),
        "expire_time",
    ),
    "as_of_nanos_of_a_second": (
        "PublishSignals",
        gov.PublishSignalsRequest(
            signals=signals_pb2.SignalSet(as_of=_time(1_780_000_000, 1_000_000_000))
        ),
        "signals.as_of",
    ),
    "nul_in_a_reason": (
        "ProposePlan",
        gov.ProposePlanRequest(
            reason="a\x00b", targets=[plan_pb2.TargetWeight(asset="BTC", weight_percent=100)]
        ),
        "reason",
    ),
    "nul_in_a_repeated_message": (
        "ProposePlan",
        gov.ProposePlanRequest(
            targets=[plan_pb2.TargetWeight(asset="BT\x00C", weight_percent=100)]
        ),
        "targets[0].asset",
    ),
}
CALLERS = {"Freeze": "carol", "PublishSignals": "model-7", "ProposePlan": "alice"}


@pytest.mark.parametrize("case", sorted(BAD_TIMES))
async def test_bad_times_and_nul_are_invalid_argument_naming_the_field(
    harness: Harness, case: str
) -> None:
    h = harness
    method, request, field = BAD_TIMES[case]
    await h.settle()
    before = await snapshot(h.store)
    error = await raw_call(h, method, request.SerializeToString(), md(CALLERS[method]))
    assert (error.code, error.fields) == (C.INVALID_ARGUMENT, [field]), error
    assert await snapshot(h.store) == before


def _apart() -> grpc.aio.Channel:
    """A channel on its own TCP connection (gRPC shares them otherwise)."""
    return grpc.aio.insecure_channel(TARGET[0], options=[("grpc.use_local_subchannel_pool", 1)])


TARGET = [""]


async def _open(channel: grpc.aio.Channel, who: str) -> Any:
    """A WatchFreezeEvents stream that has answered (its first heartbeat)."""
    stub: Any = channel.unary_stream(f"{GOV}/WatchFreezeEvents")
    stream = stub(gov.WatchFreezeEventsRequest().SerializeToString(), metadata=md(who))
    await stream.read()
    return stream


async def _refused_stream(channel: grpc.aio.Channel, who: str) -> GovexRpcError:
    try:
        await _open(channel, who)
    except grpc.RpcError as error:
        return GovexRpcError.from_rpc_error(error)
    raise AssertionError("the stream was opened")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_stream_limits_per_connection_and_per_principal(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    TARGET[0] = h.target
    channels = [_apart() for _ in range(6)]
    try:
        streams = []
        for channel in channels[:5]:
            streams += await asyncio.gather(*(_open(channel, "victor") for _ in range(100)))
        assert h.running is not None
        assert h.running.limits.open_streams("victor") == 500
        with caplog.at_level(logging.WARNING, logger="govex.api"):
            by_principal = await _refused_stream(channels[5], "victor")
            by_connection = await _refused_stream(channels[0], "alice")
        assert (by_principal.code, by_principal.reason) == (
            C.RESOURCE_EXHAUSTED,
            "STREAMS_PER_PRINCIPAL",
        )
        assert (by_connection.code, by_connection.reason) == (
            C.RESOURCE_EXHAUSTED,
            "STREAMS_PER_CONNECTION",
        )
        assert "STREAMS_PER_PRINCIPAL" in caplog.text and "STREAMS_PER_CONNECTION" in caplog.text
        # Meanwhile another principal's unary call answers at once, on a
        # connection that holds 100 streams as well as on a fresh one.
        for channel in (channels[0], channels[5]):
            unary: Any = channel.unary_unary(f"{GOV}/GetGovernanceState")
            answer = unary(
                gov.GetGovernanceStateRequest().SerializeToString(), metadata=md("carol"), timeout=5
            )
            assert await answer
        # A closed stream gives its place back.
        streams.pop().cancel()
        await wait_for(lambda: _holds(h, "victor", 499))
        streams.append(await _open(channels[5], "victor"))
        for stream in streams:
            stream.cancel()
        await wait_for(lambda: _holds(h, "victor", 0))
    finally:
        for channel in channels:
            await channel.close()


async def _holds(h: Harness, who: str, count: int) -> bool:
    assert h.running is not None
    return h.running.limits.open_streams(who) == count


async def test_sandbox_on_an_exchange_without_a_testnet(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(credentials_key=Fernet.generate_key().decode())
    request = connect_request(name="exchanges/kraken-test", ccxt_id="kraken")
    error = await refused(h.exe.ConnectExchange(request, metadata=md("carol")))
    assert (error.code, error.reason) == (C.FAILED_PRECONDITION, "SANDBOX_UNSUPPORTED")
    assert "kraken" in error.message


def _propose(reason: str, request_id: str) -> gov.ProposePlanRequest:
    return gov.ProposePlanRequest(
        reason=reason,
        request_id=request_id,
        targets=[plan_pb2.TargetWeight(asset="USDT", weight_percent=100)],
    )


async def test_request_ids_are_kept_for_the_retention_period(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(request_id_retention_hours=2)
    first = await h.gov.ProposePlan(_propose("one", "rid-kept"), metadata=md("alice"))
    h.clock.advance(timedelta(hours=1, minutes=59))
    reused = await refused(h.gov.ProposePlan(_propose("two", "rid-kept"), metadata=md("alice")))
    assert reused.reason == "REQUEST_ID_REUSED"
    again = await h.gov.ProposePlan(_propose("one", "rid-kept"), metadata=md("alice"))
    assert again.plan.name == first.plan.name
    h.clock.advance(timedelta(minutes=2))
    # Past the retention the key means nothing: a new request.
    fresh = await h.gov.ProposePlan(_propose("two", "rid-kept"), metadata=md("alice"))
    assert fresh.plan.name != first.plan.name
    assert h.running is not None
    h.clock.advance(timedelta(hours=2, minutes=1))
    assert await h.running.keys.prune() == 1  # the fresh key; the first one it replaced
    assert await h.running.keys.prune() == 0


def copy_principals(directory: Path) -> Path:
    """A principals file of our own, to change while serving."""
    path = directory / "principals.toml"
    path.write_text(Path(PRINCIPALS_FILE).read_text())
    return path


def append(path: Path, text: str) -> None:
    """Appends in one write (the poll must not see half a file)."""
    new = path.with_suffix(".new")
    new.write_text(path.read_text() + text)
    new.replace(path)


def _principal(name: str, roles: str, token: str) -> str:
    return (
        f'\n[[principal]]\nname = "{name}"\nkind = "human"\nroles = [{roles}]\n'
        f'token_sha256 = "{token_sha256(token)}"\n'
    )


async def test_principals_reload_by_poll_is_audited(
    harness_factory: HarnessFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    principals = copy_principals(tmp_path)
    h = await harness_factory(principals_file=str(principals), principals_reload_seconds=1)
    zoe = (("authorization", "Bearer zoe-token"),)
    request = gov.GetGovernanceStateRequest()
    unknown = await refused(h.gov.GetGovernanceState(request, metadata=zoe))
    assert unknown.reason == "UNKNOWN_TOKEN"
    append(principals, _principal("zoe", '"viewer"', "zoe-token"))

    async def zoe_works() -> bool:
        try:
            await h.gov.GetGovernanceState(request, metadata=zoe)
            return True
        except grpc.RpcError:
            return False

    await wait_for(zoe_works, within=10)
    records = await h.store.read(lambda uow: uow.audit.for_resource("principals"))
    assert [(r.rpc, r.details["added"]) for r in records] == [("PrincipalsReload", ["zoe"])]
    # A broken file is refused; the principals in force stay.
    with caplog.at_level(logging.ERROR, logger="govex.principals"):
        append(principals, "\n[[principal]]\nname = 3\n")
        await wait_for(lambda: _logged(caplog, "principals file not reloaded"), within=10)
    assert await zoe_works()
    assert await h.store.read(lambda uow: len(uow.audit.for_resource("principals"))) == 1


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_client_pinging_too_often_loses_its_connection(harness: Harness) -> None:
    # Keepalive enforcement: pings every 100 ms against the 10 s the server
    # tolerates; after two strikes the server sends GOAWAY too_many_pings.
    options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    async with grpc.aio.insecure_channel(harness.target, options=options) as channel:
        watch: Any = channel.unary_stream(f"{GOV}/WatchFreezeEvents")
        stream = watch(gov.WatchFreezeEventsRequest().SerializeToString(), metadata=md("victor"))
        await stream.read()  # the first heartbeat: the stream is open

        async def until_it_ends() -> None:
            while await stream.read() is not grpc.aio.EOF:
                pass  # heartbeats

        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(until_it_ends(), 30)
        assert ended.value.code() == C.UNAVAILABLE
        assert "ping" in (ended.value.details() or "").lower()
