"""GovernanceService servicer: proto in, domain call, proto out. No rules here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from govex.governance.v1 import (
    events_pb2,
)
from govex.governance.v1 import (
    governance_service_pb2 as pb,
)
from govex.governance.v1 import (
    governance_service_pb2_grpc as pb_grpc,
)
from govex_server.api import convert
from govex_server.api.execution import execute_request, view_to_pb
from govex_server.api.governance_signals import SignalAndAuditRpcs
from govex_server.api.rpc import Context, mutation, stream, unary
from govex_server.api.state_frame import GovernanceStateFrames
from govex_server.api.streams import EventStreams
from govex_server.domain import update_mask
from govex_server.domain.clock import Clock
from govex_server.domain.errors import failed_precondition
from govex_server.domain.events import FREEZE_KINDS, GOVERNANCE_KINDS
from govex_server.domain.freezes import Freeze as FreezeRecord
from govex_server.domain.governance import GovernanceMode, ModeSetting
from govex_server.domain.plans import Plan
from govex_server.domain.principals import Principal
from govex_server.domain.rpcs import may_call
from govex_server.services.activation import Activation
from govex_server.services.audit import AuditLog
from govex_server.services.engine import ExecutionEngine, ExecutionView
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import AutoAdvance, GovernanceService
from govex_server.services.policy import PolicyService
from govex_server.services.recorder import Call


class GovernanceServicer(SignalAndAuditRpcs, pb_grpc.GovernanceServiceServicer):
    """govex.governance.v1.GovernanceService."""

    def __init__(
        self,
        governance: GovernanceService,
        freezes: FreezeService,
        streams: EventStreams,
        policy: PolicyService,
        engine: ExecutionEngine,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._engine = engine
        self._gov = governance
        self._freezes = freezes
        self._streams = streams
        self._policy = policy
        self._state = GovernanceStateFrames(governance.read_cache, policy.read_cache)
        # ValidateAllocation counts days as ExecutePlan would, with its limit.
        self._max_days = engine.max_execution_days

    # ----------------------------------------------------------------- state

    @unary
    async def GetGovernanceState(  # type: ignore[override]
        self, request: pb.GetGovernanceStateRequest, principal: Principal
    ) -> bytes:
        # Pre-serialized (registered with the identity serializer).
        frame = self._state.reusable(self._state.inputs(), self._clock.now())
        if frame is not None:
            return frame
        before = self._state.generations()
        snap = await self._gov.snapshot()
        view = await self._policy.view()
        frame = self._state.frame(snap, view, snap.read_time)
        self._state.keep(frame, before, snap.read_time)
        return frame

    @unary
    async def GetCooldownStatus(
        self, request: pb.GetCooldownStatusRequest, principal: Principal
    ) -> pb.GetCooldownStatusResponse:
        status = await self._gov.cooldown_status()
        return pb.GetCooldownStatusResponse(cooldown=convert.cooldown_to_pb(status))

    @mutation(
        lambda self, s: pb.SetGovernanceModeResponse(mode=convert.mode_to_pb(s.mode), etag=s.etag)
    )
    async def SetGovernanceMode(
        self, request: pb.SetGovernanceModeRequest, call: Call
    ) -> ModeSetting:
        mode = convert.mode_from_pb(request.mode)
        return await self._gov.set_mode(call.principal, mode, request.etag, request.reason, call)

    # ----------------------------------------------------------------- plans

    @mutation(lambda self, result: _proposal_to_pb(*result))
    async def ProposePlan(
        self, request: pb.ProposePlanRequest, call: Call
    ) -> tuple[Plan, AutoAdvance | None]:
        principal = call.principal
        targets = convert.targets_from_pb(list(request.targets))
        if request.auto_advance:
            mode = await self._gov.mode()
            if principal.is_human or mode.mode is not GovernanceMode.FULL_AI:
                raise failed_precondition(
                    "MODE_FORBIDS",
                    "auto_advance",
                    "auto_advance is for ai principals in FULL_AI mode "
                    f"({principal.name} is {principal.kind.value}, mode {mode.mode.value})",
                )
        # The proposal's transaction stores the DRAFT response first: a
        # repeat after a crash mid-advance gets that plan, never a second one.
        call.respond = lambda plan: _proposal_to_pb(plan, None).SerializeToString()
        plan = await self._gov.propose(principal, targets, request.reason, call)
        if not request.auto_advance:
            return plan, None
        result = await self._gov.auto_advance(
            principal, plan, lambda rpc: may_call(principal.roles, rpc)
        )
        call.respond = lambda r: _proposal_to_pb(*r).SerializeToString()
        await self._gov.amend_response(call, (result.plan, result))
        return result.plan, result

    @unary
    async def GetPlan(self, request: pb.GetPlanRequest, principal: Principal) -> pb.GetPlanResponse:
        plan = await self._gov.get_plan(request.name)
        return pb.GetPlanResponse(plan=convert.plan_to_pb(plan))

    @unary
    async def ListPlans(
        self, request: pb.ListPlansRequest, principal: Principal
    ) -> pb.ListPlansResponse:
        states = [
            convert.plan_state_from_pb(value, f"states[{i}]")
            for i, value in enumerate(request.states)
        ]
        page = await self._gov.list_plans(
            states, request.page_size, request.page_token, request.filter
        )
        return pb.ListPlansResponse(
            plans=[convert.plan_to_pb(p) for p in page.plans],
            next_page_token=page.next_page_token,
        )

    @mutation(lambda self, plan: pb.UpdatePlanResponse(plan=convert.plan_to_pb(plan)))
    async def UpdatePlan(self, request: pb.UpdatePlanRequest, call: Call) -> Plan:
        plan = request.plan
        present = {"targets"} if plan.targets else set()
        if plan.reason:
            present.add("reason")
        fields = update_mask.resolve(request.update_mask.paths, ("targets", "reason"), present)
        targets = convert.targets_from_pb(list(plan.targets)) if "targets" in fields else None
        reason = plan.reason if "reason" in fields else None
        return await self._gov.update(call.principal, plan.name, plan.etag, targets, reason, call)

    @mutation(lambda self, plan: pb.ReviewPlanResponse(plan=convert.plan_to_pb(plan)))
    async def ReviewPlan(self, request: pb.ReviewPlanRequest, call: Call) -> Plan:
        return await self._gov.review(
            call.principal, request.name, request.etag, request.comment, call
        )

    @mutation(lambda self, plan: pb.ApprovePlanResponse(plan=convert.plan_to_pb(plan)))
    async def ApprovePlan(self, request: pb.ApprovePlanRequest, call: Call) -> Plan:
        return await self._gov.approve(
            call.principal, request.name, request.etag, request.comment, call
        )

    @mutation(lambda self, plan: pb.RejectPlanResponse(plan=convert.plan_to_pb(plan)))
    async def RejectPlan(self, request: pb.RejectPlanRequest, call: Call) -> Plan:
        return await self._gov.reject(
            call.principal, request.name, request.etag, request.reason, call
        )

    @mutation(lambda self, result: _activation_to_pb(result))
    async def ActivatePlan(self, request: pb.ActivatePlanRequest, call: Call) -> Activation:
        return await self._gov.activate(
            call.principal,
            request.name,
            request.etag,
            request.override_cooldown,
            request.override_reason,
            call,
        )

    @mutation(lambda self, plan: pb.CancelPlanResponse(plan=convert.plan_to_pb(plan)))
    async def CancelPlan(self, request: pb.CancelPlanRequest, call: Call) -> Plan:
        return await self._gov.cancel(
            call.principal, request.name, request.etag, request.reason, call
        )

    @mutation(lambda self, view: pb.ExecutePlanResponse(execution=view_to_pb(view)))
    async def ExecutePlan(self, request: pb.ExecutePlanRequest, call: Call) -> ExecutionView:
        # The same operation as ExecutionService.ExecutePlan: same fields, same
        # engine call, same idempotency (each service keeps its own keys).
        return await self._engine.execute(call.principal, execute_request(request), call)

    @mutation(lambda self, freeze: pb.FreezeResponse(freeze=convert.freeze_to_pb(freeze)))
    async def Freeze(self, request: pb.FreezeRequest, call: Call) -> FreezeRecord:
        freeze_type = convert.freeze_type_from_pb(request.type, "type")
        which = request.WhichOneof("expiration")
        ttl = request.ttl.ToTimedelta() if which == "ttl" else None
        expire_time = request.expire_time.ToDatetime(tzinfo=UTC) if which == "expire_time" else None
        return await self._freezes.freeze(
            call.principal, freeze_type, request.reason, ttl, expire_time, call
        )

    @mutation(
        lambda self, lifted: pb.UnfreezeResponse(freezes=[convert.freeze_to_pb(f) for f in lifted])
    )
    async def Unfreeze(self, request: pb.UnfreezeRequest, call: Call) -> list[FreezeRecord]:
        return await self._freezes.unfreeze(
            call.principal, request.name, request.all, request.reason, call
        )

    @unary
    async def GetFreeze(
        self, request: pb.GetFreezeRequest, principal: Principal
    ) -> pb.GetFreezeResponse:
        freeze = await self._freezes.get(request.name)
        return pb.GetFreezeResponse(freeze=convert.freeze_to_pb(freeze))

    @unary
    async def ListFreezes(
        self, request: pb.ListFreezesRequest, principal: Principal
    ) -> pb.ListFreezesResponse:
        types = [
            convert.freeze_type_from_pb(value, f"types[{i}]")
            for i, value in enumerate(request.types)
        ]
        page = await self._freezes.list(
            request.include_ended, types, request.page_size, request.page_token, request.filter
        )
        return pb.ListFreezesResponse(
            freezes=[convert.freeze_to_pb(f) for f in page.freezes],
            next_page_token=page.next_page_token,
        )

    @unary
    async def CheckOperation(
        self, request: pb.CheckOperationRequest, principal: Principal
    ) -> pb.CheckOperationResponse:
        operation = convert.operation_from_pb(request.operation)
        verdict = await self._freezes.check(operation)
        return pb.CheckOperationResponse(verdict=convert.verdict_to_pb(verdict))

    @stream
    async def WatchFreezeEvents(  # type: ignore[override]
        self, request: pb.WatchFreezeEventsRequest, principal: Principal, context: Context
    ) -> AsyncIterator[bytes]:
        kinds = frozenset(k.value for k in FREEZE_KINDS)
        async for frame in self._streams.stream(
            request.after_sequence, kinds, _freeze_heartbeat, request.from_oldest
        ):
            yield frame

    @stream
    async def WatchGovernanceEvents(  # type: ignore[override]
        self, request: pb.WatchGovernanceEventsRequest, principal: Principal, context: Context
    ) -> AsyncIterator[bytes]:
        kinds = frozenset(
            convert.event_kind_from_pb(value, f"kinds[{i}]").value
            for i, value in enumerate(request.kinds)
        ) or frozenset(k.value for k in GOVERNANCE_KINDS)
        async for frame in self._streams.stream(
            request.after_sequence, kinds, _governance_heartbeat, request.from_oldest
        ):
            yield frame


def _heartbeat(sequence: int, now: datetime) -> events_pb2.Heartbeat:
    return events_pb2.Heartbeat(current_sequence=sequence, time=convert.timestamp(now))


def _freeze_heartbeat(sequence: int, now: datetime) -> bytes:
    return pb.WatchFreezeEventsResponse(heartbeat=_heartbeat(sequence, now)).SerializeToString()


def _governance_heartbeat(sequence: int, now: datetime) -> bytes:
    message = pb.WatchGovernanceEventsResponse(heartbeat=_heartbeat(sequence, now))
    return message.SerializeToString()


def _proposal_to_pb(plan: Plan, advance: AutoAdvance | None) -> pb.ProposePlanResponse:
    response = pb.ProposePlanResponse(plan=convert.plan_to_pb(plan))
    if advance is not None:
        response.auto_advance.CopyFrom(
            pb.AutoAdvanceOutcome(
                steps_taken=advance.steps,
                stopped_at=convert.plan_state_to_pb(advance.plan.state),
                stop_reason=advance.stop_reason,
            )
        )
    return response


def _activation_to_pb(result: Activation) -> pb.ActivatePlanResponse:
    response = pb.ActivatePlanResponse(plan=convert.plan_to_pb(result.plan))
    if result.superseded is not None:
        response.superseded_plan.CopyFrom(convert.plan_to_pb(result.superseded))
    return response
