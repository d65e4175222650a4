"""GovernanceService servicer: proto in, domain call, proto out. No rules here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from govex.governance.v1 import (
    events_pb2,
    governance_state_pb2,
)
from govex.governance.v1 import (
    governance_service_pb2 as pb,
)
from govex.governance.v1 import (
    governance_service_pb2_grpc as pb_grpc,
)
from govex_server.api import convert
from govex_server.api.auth import RPC_ROLES, Authenticator
from govex_server.api.rpc import Context, idempotent, stream, unary
from govex_server.api.state_frame import GovernanceStateFrames
from govex_server.api.streams import EventStreams
from govex_server.domain.allocation import evaluate
from govex_server.domain.errors import failed_precondition, invalid_field
from govex_server.domain.events import FREEZE_KINDS, GOVERNANCE_KINDS
from govex_server.domain.execution.records import Strategy
from govex_server.domain.freezes import Freeze
from govex_server.domain.governance import GovernanceMode
from govex_server.domain.plans import PlanState
from govex_server.domain.principals import Principal
from govex_server.services.engine import ExecuteRequest, ExecutionEngine, ExecutionView
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import Activation, GovernanceService
from govex_server.services.policy import PolicyService, PolicyView


class GovernanceServicer(pb_grpc.GovernanceServiceServicer):
    """govex.governance.v1.GovernanceService."""

    def __init__(
        self,
        auth: Authenticator,
        governance: GovernanceService,
        freezes: FreezeService,
        streams: EventStreams,
        policy: PolicyService,
        engine: ExecutionEngine,
    ) -> None:
        self.auth = auth
        self._engine = engine
        self._gov = governance
        self._freezes = freezes
        self._streams = streams
        self._policy = policy
        self._state = GovernanceStateFrames()

    # ----------------------------------------------------------------- state

    @unary("GetGovernanceState")
    async def GetGovernanceState(  # type: ignore[override]
        self, request: pb.GetGovernanceStateRequest, principal: Principal
    ) -> bytes:
        # Pre-serialized (registered with the identity serializer).
        snap = await self._gov.snapshot()
        view = await self._policy.view()
        return self._state.frame(snap, view, snap.read_time)

    @unary("GetCooldownStatus")
    async def GetCooldownStatus(
        self, request: pb.GetCooldownStatusRequest, principal: Principal
    ) -> pb.GetCooldownStatusResponse:
        status = await self._gov.cooldown_status()
        return pb.GetCooldownStatusResponse(cooldown=convert.cooldown_to_pb(status))

    @unary("SetGovernanceMode")
    async def SetGovernanceMode(
        self, request: pb.SetGovernanceModeRequest, principal: Principal
    ) -> pb.SetGovernanceModeResponse:
        mode = convert.mode_from_pb(request.mode)
        return await idempotent(
            self._gov,
            principal,
            "SetGovernanceMode",
            request,
            pb.SetGovernanceModeResponse,
            lambda idem: self._gov.set_mode(principal, mode, request.etag, request.reason, idem),
            lambda s: pb.SetGovernanceModeResponse(mode=convert.mode_to_pb(s.mode), etag=s.etag),
        )

    # ----------------------------------------------------------------- plans

    @unary("ProposePlan")
    async def ProposePlan(
        self, request: pb.ProposePlanRequest, principal: Principal
    ) -> pb.ProposePlanResponse:
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
        response = await idempotent(
            self._gov,
            principal,
            "ProposePlan",
            request,
            pb.ProposePlanResponse,
            lambda idem: self._gov.propose(principal, targets, request.reason, idem),
            lambda plan: pb.ProposePlanResponse(plan=convert.plan_to_pb(plan)),
        )
        if not request.auto_advance:
            return response
        plan = await self._gov.get_plan(response.plan.name)
        if plan.state is not PlanState.DRAFT:
            return response  # a replayed request: the plan was advanced already
        result = await self._gov.auto_advance(
            principal, plan, lambda rpc: principal.has_any(RPC_ROLES[rpc])
        )
        return pb.ProposePlanResponse(
            plan=convert.plan_to_pb(result.plan),
            auto_advance=pb.AutoAdvanceOutcome(
                steps_taken=result.steps,
                stopped_at=convert.plan_state_to_pb(result.plan.state),
                stop_reason=result.stop_reason,
            ),
        )

    @unary("GetPlan")
    async def GetPlan(self, request: pb.GetPlanRequest, principal: Principal) -> pb.GetPlanResponse:
        plan = await self._gov.get_plan(request.name)
        return pb.GetPlanResponse(plan=convert.plan_to_pb(plan))

    @unary("ListPlans")
    async def ListPlans(
        self, request: pb.ListPlansRequest, principal: Principal
    ) -> pb.ListPlansResponse:
        states = [
            convert.plan_state_from_pb(value, f"states[{i}]")
            for i, value in enumerate(request.states)
        ]
        page = await self._gov.list_plans(states, request.page_size, request.page_token)
        return pb.ListPlansResponse(
            plans=[convert.plan_to_pb(p) for p in page.plans],
            next_page_token=page.next_page_token,
        )

    @unary("UpdatePlan")
    async def UpdatePlan(
        self, request: pb.UpdatePlanRequest, principal: Principal
    ) -> pb.UpdatePlanResponse:
        targets = convert.targets_from_pb(list(request.targets))
        reason = request.reason if request.HasField("reason") else None
        return await idempotent(
            self._gov,
            principal,
            "UpdatePlan",
            request,
            pb.UpdatePlanResponse,
            lambda idem: self._gov.update(
                principal, request.name, request.etag, targets, reason, idem
            ),
            lambda plan: pb.UpdatePlanResponse(plan=convert.plan_to_pb(plan)),
        )

    @unary("ReviewPlan")
    async def ReviewPlan(
        self, request: pb.ReviewPlanRequest, principal: Principal
    ) -> pb.ReviewPlanResponse:
        return await idempotent(
            self._gov,
            principal,
            "ReviewPlan",
            request,
            pb.ReviewPlanResponse,
            lambda idem: self._gov.review(
                principal, request.name, request.etag, request.comment, idem
            ),
            lambda plan: pb.ReviewPlanResponse(plan=convert.plan_to_pb(plan)),
        )

    @unary("ApprovePlan")
    async def ApprovePlan(
        self, request: pb.ApprovePlanRequest, principal: Principal
    ) -> pb.ApprovePlanResponse:
        return await idempotent(
            self._gov,
            principal,
            "ApprovePlan",
            request,
            pb.ApprovePlanResponse,
            lambda idem: self._gov.approve(
                principal, request.name, request.etag, request.comment, idem
            ),
            lambda plan: pb.ApprovePlanResponse(plan=convert.plan_to_pb(plan)),
        )

    @unary("RejectPlan")
    async def RejectPlan(
        self, request: pb.RejectPlanRequest, principal: Principal
    ) -> pb.RejectPlanResponse:
        return await idempotent(
            self._gov,
            principal,
            "RejectPlan",
            request,
            pb.RejectPlanResponse,
            lambda idem: self._gov.reject(
                principal, request.name, request.etag, request.reason, idem
            ),
            lambda plan: pb.RejectPlanResponse(plan=convert.plan_to_pb(plan)),
        )

    @unary("ActivatePlan")
    async def ActivatePlan(
        self, request: pb.ActivatePlanRequest, principal: Principal
    ) -> pb.ActivatePlanResponse:
        def to_response(result: Activation) -> pb.ActivatePlanResponse:
            response = pb.ActivatePlanResponse(plan=convert.plan_to_pb(result.plan))
            if result.superseded is not None:
                response.superseded_plan.CopyFrom(convert.plan_to_pb(result.superseded))
            return response

        return await idempotent(
            self._gov,
            principal,
            "ActivatePlan",
            request,
            pb.ActivatePlanResponse,
            lambda idem: self._gov.activate(
                principal,
                request.name,
                request.etag,
                request.override_cooldown,
                request.override_reason,
                idem,
            ),
            to_response,
        )

    @unary("CancelPlan")
    async def CancelPlan(
        self, request: pb.CancelPlanRequest, principal: Principal
    ) -> pb.CancelPlanResponse:
        return await idempotent(
            self._gov,
            principal,
            "CancelPlan",
            request,
            pb.CancelPlanResponse,
            lambda idem: self._gov.cancel(
                principal, request.name, request.etag, request.reason, idem
            ),
            lambda plan: pb.CancelPlanResponse(plan=convert.plan_to_pb(plan)),
        )

    # ------------------------------------------- contract not yet implemented

    @unary("ExecutePlan")
    async def ExecutePlan(
        self, request: pb.ExecutePlanRequest, principal: Principal
    ) -> pb.ExecutePlanResponse:
        # The governed entry: the same code path as ExecutionService.ExecutePlan,
        # with the server's defaults for strategy and safety level.
        execute = ExecuteRequest(
            plan=request.name,
            etag=request.etag,
            dry_run=request.dry_run,
            strategy=Strategy.SEQUENTIAL,
            max_parallel=0,
            exchange=request.exchange,
            level=None,
        )
        plan = await self._gov.get_plan(request.name)

        def to_response(view: ExecutionView) -> pb.ExecutePlanResponse:
            return pb.ExecutePlanResponse(
                execution=view.execution.name, plan=convert.plan_to_pb(plan)
            )

        return await idempotent(
            self._gov,
            principal,
            "GovernanceService.ExecutePlan",
            request,
            pb.ExecutePlanResponse,
            lambda idem: self._engine.execute(principal, execute),
            to_response,
        )

    @unary("GetSignals")
    async def GetSignals(
        self, request: pb.GetSignalsRequest, principal: Principal
    ) -> pb.GetSignalsResponse:
        view = await self._policy.view()
        response = pb.GetSignalsResponse(freshness=convert.freshness_to_pb(view.freshness))
        if view.signals is not None and view.age is not None:
            response.signals.CopyFrom(convert.signals_to_pb(view.signals))
            response.age.CopyFrom(convert.duration(view.age))
        return response

    @unary("PublishSignals")
    async def PublishSignals(
        self, request: pb.PublishSignalsRequest, principal: Principal
    ) -> pb.PublishSignalsResponse:
        if not request.HasField("signals"):
            raise invalid_field("signals", "required")
        signals = convert.signals_from_pb(request.signals)

        def to_response(view: PolicyView) -> pb.PublishSignalsResponse:
            assert view.signals is not None
            return pb.PublishSignalsResponse(
                signals=convert.signals_to_pb(view.signals),
                policy=convert.policy_to_pb(view.policy),
                freshness=convert.freshness_to_pb(view.freshness),
                phase=convert.phase_to_pb(view.phase),
            )

        return await idempotent(
            self._gov,
            principal,
            "PublishSignals",
            request,
            pb.PublishSignalsResponse,
            lambda idem: self._policy.publish(principal, signals, idem),
            to_response,
        )

    @unary("ValidateAllocation")
    async def ValidateAllocation(
        self, request: pb.ValidateAllocationRequest, principal: Principal
    ) -> pb.ValidateAllocationResponse:
        view = await self._policy.view()
        value = request.portfolio_value_usd if request.HasField("portfolio_value_usd") else None
        verdict = evaluate(
            convert.targets_from_pb(list(request.current)),
            convert.targets_from_pb(list(request.target)),
            value,
            view.policy,
        )
        response = pb.ValidateAllocationResponse(
            turnover_percent=verdict.turnover_percent,
            estimated_cost_bps=verdict.estimated_cost_bps,
            days_at_cap=verdict.days_at_cap,
            recommendation=governance_state_pb2.AllocationRecommendation.Value(
                f"ALLOCATION_RECOMMENDATION_{verdict.recommendation.value}"
            ),
            reasons=list(verdict.reasons),
            policy=convert.policy_to_pb(view.policy),
        )
        if verdict.estimated_cost_usd is not None:
            response.estimated_cost_usd = verdict.estimated_cost_usd
        for change in verdict.changes:
            response.changes.add(
                asset=change.asset,
                current_percent=change.current,
                target_percent=change.target,
                delta_percent=change.delta,
                inside_no_trade_zone=change.inside_no_trade_zone,
            )
        return response

    @unary("Freeze")
    async def Freeze(self, request: pb.FreezeRequest, principal: Principal) -> pb.FreezeResponse:
        freeze_type = convert.freeze_type_from_pb(request.type, "type")
        which = request.WhichOneof("expiration")
        ttl = request.ttl.ToTimedelta() if which == "ttl" else None
        expire_time = request.expire_time.ToDatetime(tzinfo=UTC) if which == "expire_time" else None
        return await idempotent(
            self._gov,
            principal,
            "Freeze",
            request,
            pb.FreezeResponse,
            lambda idem: self._freezes.freeze(
                principal, freeze_type, request.reason, ttl, expire_time, idem
            ),
            lambda freeze: pb.FreezeResponse(freeze=convert.freeze_to_pb(freeze)),
        )

    @unary("Unfreeze")
    async def Unfreeze(
        self, request: pb.UnfreezeRequest, principal: Principal
    ) -> pb.UnfreezeResponse:
        def to_response(lifted: list[Freeze]) -> pb.UnfreezeResponse:
            return pb.UnfreezeResponse(freezes=[convert.freeze_to_pb(f) for f in lifted])

        return await idempotent(
            self._gov,
            principal,
            "Unfreeze",
            request,
            pb.UnfreezeResponse,
            lambda idem: self._freezes.unfreeze(
                principal, request.name, request.all, request.reason, idem
            ),
            to_response,
        )

    @unary("ListFreezes")
    async def ListFreezes(
        self, request: pb.ListFreezesRequest, principal: Principal
    ) -> pb.ListFreezesResponse:
        types = [
            convert.freeze_type_from_pb(value, f"types[{i}]")
            for i, value in enumerate(request.types)
        ]
        page = await self._freezes.list(
            request.include_ended, types, request.page_size, request.page_token
        )
        return pb.ListFreezesResponse(
            freezes=[convert.freeze_to_pb(f) for f in page.freezes],
            next_page_token=page.next_page_token,
        )

    @unary("CheckOperation")
    async def CheckOperation(
        self, request: pb.CheckOperationRequest, principal: Principal
    ) -> pb.CheckOperationResponse:
        operation = convert.operation_from_pb(request.operation)
        verdict = await self._freezes.check(operation)
        return pb.CheckOperationResponse(verdict=convert.verdict_to_pb(verdict))

    # Streams yield pre-serialized frames (see api/streams.py and
    # api/registration.py), hence bytes instead of the response messages.

    @stream("WatchFreezeEvents")
    async def WatchFreezeEvents(  # type: ignore[override]
        self, request: pb.WatchFreezeEventsRequest, principal: Principal, context: Context
    ) -> AsyncIterator[bytes]:
        kinds = frozenset(k.value for k in FREEZE_KINDS)
        async for frame in self._streams.stream(
            request.after_sequence, kinds, _freeze_heartbeat, request.from_oldest
        ):
            yield frame

    @stream("WatchGovernanceEvents")
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
