"""The walk over the service descriptors: every RPC is in the domain's RPC
table, every mutating RPC takes a request_id, and every mutating RPC has a
scenario below that proves it replays its first response, refuses another
payload under the same request_id, writes exactly one audit record and
checks roles. Adding a mutating RPC without a scenario fails this file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message
from sqlalchemy import func, select

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from govex_server.app import EXECUTION, GOVERNANCE
from govex_server.domain.rpcs import RPCS, short_name
from govex_server.store import tables as t
from tests.conftest import Harness, HarnessFactory
from tests.integration.freeze_helpers import freeze, ttl
from tests.integration.helpers import approve, propose, refused, review
from tests.integration.test_connect_exchange import request as connect_request
from tests.integration.test_execution import BIG, active, execute
from tests.integration.test_policy_api import signal_set
from tests.support import md

Prepared = tuple[Message, Message]  # the request, and another payload


@dataclass(frozen=True)
class Scenario:
    """How to call one mutating RPC: who may, who may not, and a request."""

    method: Callable[[Harness], Any]
    who: str
    outsider: str
    prepare: Callable[[Harness], Awaitable[Prepared]]


def _pair(request: Message, **other: Any) -> Prepared:
    changed = type(request)()
    changed.CopyFrom(request)
    for field, value in other.items():
        setattr(changed, field, value)
    return request, changed


async def _publish(h: Harness) -> Prepared:
    first = gov.PublishSignalsRequest(signals=signal_set(h, confidence=0.9))
    other = gov.PublishSignalsRequest(signals=signal_set(h, confidence=0.4))
    return first, other


async def _propose(h: Harness) -> Prepared:
    request = gov.ProposePlanRequest(reason="rebalance")
    for asset, weight in (("BTC", 50.0), ("USDT", 50.0)):
        request.targets.add(asset=asset, weight_percent=weight)
    return _pair(request, reason="another reason")


async def _update(h: Harness) -> Prepared:
    plan = await propose(h)
    request = gov.UpdatePlanRequest()
    request.plan.CopyFrom(plan)
    request.plan.reason = "same weights, new reason"
    request.update_mask.paths[:] = ["targets", "reason"]
    other = gov.UpdatePlanRequest()
    other.CopyFrom(request)
    other.plan.reason = "yet another"
    return request, other


async def _review(h: Harness) -> Prepared:
    plan = await propose(h)
    return _pair(gov.ReviewPlanRequest(name=plan.name, etag=plan.etag), comment="other")


async def _reviewed(h: Harness) -> plan_pb2.Plan:
    return await review(h, await propose(h))


async def _approve(h: Harness) -> Prepared:
    plan = await _reviewed(h)
    return _pair(gov.ApprovePlanRequest(name=plan.name, etag=plan.etag), comment="other")


async def _reject(h: Harness) -> Prepared:
    plan = await _reviewed(h)
    return _pair(gov.RejectPlanRequest(name=plan.name, etag=plan.etag, reason="no"), reason="nah")


async def _activate(h: Harness) -> Prepared:
    plan = await approve(h, await _reviewed(h))
    return _pair(gov.ActivatePlanRequest(name=plan.name, etag=plan.etag), override_reason="x")


async def _execute_via_governance(h: Harness) -> Prepared:
    plan = await active(h, BIG)
    return _pair(gov.ExecutePlanRequest(plan=plan.name, etag=plan.etag), dry_run=True)


async def _cancel_plan(h: Harness) -> Prepared:
    plan = await propose(h)
    return _pair(gov.CancelPlanRequest(name=plan.name, etag=plan.etag, reason="no"), reason="x")


async def _freeze(h: Harness) -> Prepared:
    request = gov.FreezeRequest(
        type=freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE, reason="alert", ttl=ttl(60)
    )
    return _pair(request, reason="another alert")


async def _unfreeze(h: Harness) -> Prepared:
    frozen = await freeze(h, freeze_pb2.FREEZE_TYPE_S3_ALERT_FREEZE)
    return _pair(gov.UnfreezeRequest(name=frozen.name, reason="clear"), reason="other")


async def _set_mode(h: Harness) -> Prepared:
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("dana"))
    ).state
    request = gov.SetGovernanceModeRequest(
        mode=plan_pb2.GOVERNANCE_MODE_AI_ASSISTED, etag=state.mode_etag, reason="trial"
    )
    return _pair(request, mode=plan_pb2.GOVERNANCE_MODE_FULL_AI)


async def _execute(h: Harness) -> Prepared:
    plan = await active(h, BIG)
    return _pair(exe.ExecutePlanRequest(plan=plan.name, etag=plan.etag), max_parallel=2)


async def _cancel_execution(h: Harness) -> Prepared:
    started = await execute(h, await active(h, BIG))
    return _pair(exe.CancelExecutionRequest(name=started.name, reason="stop"), reason="halt")


async def _connect(h: Harness) -> Prepared:
    return _pair(connect_request(), max_orders_per_window=30)


SCENARIOS: dict[str, Scenario] = {
    "PublishSignals": Scenario(lambda h: h.gov.PublishSignals, "model-7", "alice", _publish),
    "ProposePlan": Scenario(lambda h: h.gov.ProposePlan, "alice", "bob", _propose),
    "UpdatePlan": Scenario(lambda h: h.gov.UpdatePlan, "alice", "victor", _update),
    "ReviewPlan": Scenario(lambda h: h.gov.ReviewPlan, "bob", "alice", _review),
    "ApprovePlan": Scenario(lambda h: h.gov.ApprovePlan, "bob", "alice", _approve),
    "RejectPlan": Scenario(lambda h: h.gov.RejectPlan, "bob", "alice", _reject),
    "ActivatePlan": Scenario(lambda h: h.gov.ActivatePlan, "carol", "alice", _activate),
    "ExecutePlan": Scenario(lambda h: h.gov.ExecutePlan, "carol", "bob", _execute_via_governance),
    "CancelPlan": Scenario(lambda h: h.gov.CancelPlan, "alice", "victor", _cancel_plan),
    "Freeze": Scenario(lambda h: h.gov.Freeze, "carol", "alice", _freeze),
    "Unfreeze": Scenario(lambda h: h.gov.Unfreeze, "carol", "bob", _unfreeze),
    "SetGovernanceMode": Scenario(lambda h: h.gov.SetGovernanceMode, "dana", "carol", _set_mode),
    "ExecutionService.ExecutePlan": Scenario(
        lambda h: h.exe.ExecutePlan, "carol", "dana", _execute
    ),
    "CancelExecution": Scenario(
        lambda h: h.exe.CancelExecution, "carol", "victor", _cancel_execution
    ),
    "ConnectExchange": Scenario(lambda h: h.exe.ConnectExchange, "carol", "bob", _connect),
}


def _methods() -> list[str]:
    return [f"{s.full_name}/{m.name}" for s in (GOVERNANCE, EXECUTION) for m in s.methods]


def _mutating() -> list[str]:
    return sorted(short_name(rpc) for rpc, spec in RPCS.items() if spec.mutating)


def test_the_rpc_table_lists_exactly_the_contract() -> None:
    assert sorted(RPCS) == sorted(_methods())


def test_mutating_means_it_takes_a_request_id() -> None:
    for service in (GOVERNANCE, EXECUTION):
        for method in service.methods:
            spec = RPCS[f"{service.full_name}/{method.name}"]
            fields = {f.name for f in method.input_type.fields}
            assert spec.mutating == ("request_id" in fields), method.full_name
            proto = descriptor_pb2.MethodDescriptorProto()
            method.CopyToProto(proto)
            # Streams only read; a mutation is one request, one response.
            assert not (spec.mutating and proto.server_streaming), method.full_name


def test_every_mutating_rpc_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == _mutating()


async def _audited(h: Harness, rpc: str, who: str) -> int:
    query = (
        select(func.count())
        .select_from(t.audit_log)
        .where(t.audit_log.c.rpc == rpc, t.audit_log.c.principal == who)
    )
    return int(await h.store.read(lambda uow: uow.conn.execute(query).scalar_one()))


@pytest.mark.parametrize("rpc", _mutating())
async def test_mutation_replays_refuses_reuse_audits_and_checks_roles(
    harness_factory: HarnessFactory, rpc: str
) -> None:
    scenario = SCENARIOS[rpc]
    h = await harness_factory(credentials_key=Fernet.generate_key().decode())
    call = scenario.method(h)
    request, other = await scenario.prepare(h)
    before = await _audited(h, rpc, scenario.who)

    denied = await refused(call(_with_id(request, "outsider-1"), metadata=md(scenario.outsider)))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED, denied

    first = await call(_with_id(request, "rid-1"), metadata=md(scenario.who))
    again = await call(_with_id(request, "rid-1"), metadata=md(scenario.who))
    assert again.SerializeToString(deterministic=True) == first.SerializeToString(
        deterministic=True
    )
    reused = await refused(call(_with_id(other, "rid-1"), metadata=md(scenario.who)))
    assert (reused.code, reused.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REQUEST_ID_REUSED",
    )
    assert await _audited(h, rpc, scenario.who) == before + 1
    assert await _audited(h, rpc, scenario.outsider) == 0


def _with_id(request: Message, request_id: str) -> Message:
    copy = type(request)()
    copy.CopyFrom(request)
    setattr(copy, "request_id", request_id)  # noqa: B010 - every mutation has one
    return copy
