"""GovernanceService servicer: proto in, domain call, proto out. No rules here."""

from __future__ import annotations

from collections.abc import AsyncIterator

from govex.governance.v1 import (
    governance_service_pb2 as pb,
)
from govex.governance.v1 import (
    governance_service_pb2_grpc as pb_grpc,
)
from govex.governance.v1 import (
    governance_state_pb2,
)
from govex_server.api import convert
from govex_server.api.auth import Authenticator
from govex_server.api.rpc import Context, idempotent, not_built, stream, unary
from govex_server.domain.principals import Principal
from govex_server.services.governance import Activation, GovernanceService

SIGNALS_ISSUE = "signals and policy: issue 4"
FREEZES_ISSUE = "freezes and event streams: issue 3"
EXECUTION_ISSUE = "execution pipeline: issue 5"


class GovernanceServicer(pb_grpc.GovernanceServiceServicer):
    """govex.governance.v1.GovernanceService."""

    def __init__(self, auth: Authenticator, governance: GovernanceService) -> None:
        self.auth = auth
        self._gov = governance

    # ----------------------------------------------------------------- state

    @unary("GetGovernanceState")
    async def GetGovernanceState(
        self, request: pb.GetGovernanceStateRequest, principal: Principal
    ) -> pb.GetGovernanceStateResponse:
        snap = await self._gov.snapshot()
        state = governance_state_pb2.GovernanceState(
            mode=convert.mode_to_pb(snap.mode.mode),
            mode_etag=snap.mode.etag,
            cooldown=convert.cooldown_to_pb(snap.cooldown),
            etag=snap.etag,
            read_time=convert.timestamp(snap.read_time),
        )
        if snap.active_plan is not None:
            state.active_plan.CopyFrom(convert.plan_to_pb(snap.active_plan))
        for plan_state, count in snap.counts.items():
            state.plan_counts.add(state=convert.plan_state_to_pb(plan_state), count=count)
        return pb.GetGovernanceStateResponse(state=state)

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
        if request.auto_advance:
            raise not_built("ProposePlan with auto_advance", SIGNALS_ISSUE)
        targets = convert.targets_from_pb(list(request.targets))
        return await idempotent(
            self._gov,
            principal,
            "ProposePlan",
            request,
            pb.ProposePlanResponse,
            lambda idem: self._gov.propose(principal, targets, request.reason, idem),
            lambda plan: pb.ProposePlanResponse(plan=convert.plan_to_pb(plan)),
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
        raise not_built("GovernanceService.ExecutePlan", EXECUTION_ISSUE)

    @unary("GetSignals")
    async def GetSignals(
        self, request: pb.GetSignalsRequest, principal: Principal
    ) -> pb.GetSignalsResponse:
        raise not_built("GetSignals", SIGNALS_ISSUE)

    @unary("PublishSignals")
    async def PublishSignals(
        self, request: pb.PublishSignalsRequest, principal: Principal
    ) -> pb.PublishSignalsResponse:
        raise not_built("PublishSignals", SIGNALS_ISSUE)

    @unary("ValidateAllocation")
    async def ValidateAllocation(
        self, request: pb.ValidateAllocationRequest, principal: Principal
    ) -> pb.ValidateAllocationResponse:
        raise not_built("ValidateAllocation", SIGNALS_ISSUE)

    @unary("Freeze")
    async def Freeze(self, request: pb.FreezeRequest, principal: Principal) -> pb.FreezeResponse:
        raise not_built("Freeze", FREEZES_ISSUE)

    @unary("Unfreeze")
    async def Unfreeze(
        self, request: pb.UnfreezeRequest, principal: Principal
    ) -> pb.UnfreezeResponse:
        raise not_built("Unfreeze", FREEZES_ISSUE)

    @unary("ListFreezes")
    async def ListFreezes(
        self, request: pb.ListFreezesRequest, principal: Principal
    ) -> pb.ListFreezesResponse:
        raise not_built("ListFreezes", FREEZES_ISSUE)

    @unary("CheckOperation")
    async def CheckOperation(
        self, request: pb.CheckOperationRequest, principal: Principal
    ) -> pb.CheckOperationResponse:
        raise not_built("CheckOperation", FREEZES_ISSUE)

    @stream("WatchFreezeEvents")
    async def WatchFreezeEvents(
        self, request: pb.WatchFreezeEventsRequest, principal: Principal, context: Context
    ) -> AsyncIterator[pb.WatchFreezeEventsResponse]:
        raise not_built("WatchFreezeEvents", FREEZES_ISSUE)
        yield  # pragma: no cover - makes this an async generator

    @stream("WatchGovernanceEvents")
    async def WatchGovernanceEvents(
        self, request: pb.WatchGovernanceEventsRequest, principal: Principal, context: Context
    ) -> AsyncIterator[pb.WatchGovernanceEventsResponse]:
        raise not_built("WatchGovernanceEvents", FREEZES_ISSUE)
        yield  # pragma: no cover - makes this an async generator
