"""Every GovernanceService call, with typed arguments (ExecutePlan is the
execution service's, execution.py)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import datetime, timedelta

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from govex.controls.v1 import freeze_pb2
from govex.governance.v1 import audit_pb2, events_pb2, governance_state_pb2, plan_pb2, signals_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex_client.core import ClientCore
from govex_client.paging import all_pages

Targets = Sequence[tuple[str, float]]


def _targets(
    into: RepeatedCompositeFieldContainer[plan_pb2.TargetWeight], targets: Targets
) -> None:
    for asset, weight in targets:
        into.add(asset=asset, weight_percent=weight)


def _event_position(
    item: gov.WatchFreezeEventsResponse | gov.WatchGovernanceEventsResponse,
) -> tuple[int, bool]:
    if item.WhichOneof("message") == "heartbeat":
        return item.heartbeat.current_sequence, False
    return item.event.sequence, True


class GovernanceCalls(ClientCore):
    """Plans, governance state, signals, freezes, events and audit."""

    # ---------------------------------------------------------------- plans

    async def propose_plan(
        self,
        targets: Targets,
        reason: str = "",
        *,
        request_id: str = "",
        auto_advance: bool = False,
    ) -> plan_pb2.Plan:
        """A new DRAFT plan (with ``auto_advance``, as far as the mode allows)."""
        request = gov.ProposePlanRequest(
            reason=reason, request_id=request_id, auto_advance=auto_advance
        )
        _targets(request.targets, targets)
        return (await self.call(self.governance.ProposePlan, request)).plan

    async def get_plan(self, name: str) -> plan_pb2.Plan:
        """One plan, with its etag."""
        return (await self.call(self.governance.GetPlan, gov.GetPlanRequest(name=name))).plan

    async def list_plans(
        self,
        states: Sequence[plan_pb2.PlanState.ValueType] = (),
        filter: str = "",
        page_size: int = 0,
    ) -> list[plan_pb2.Plan]:
        """Every matching plan (following pages), newest first."""
        request = gov.ListPlansRequest(states=states, filter=filter, page_size=page_size)
        return await all_pages(self, self.governance.ListPlans, request, "plans")

    async def update_plan(
        self, plan: plan_pb2.Plan, paths: Sequence[str], *, request_id: str = ""
    ) -> plan_pb2.Plan:
        """Changes the ``paths`` of a DRAFT plan, at ``plan.etag``."""
        request = gov.UpdatePlanRequest(
            plan=plan, update_mask=field_mask_pb2.FieldMask(paths=paths), request_id=request_id
        )
        return (await self.call(self.governance.UpdatePlan, request)).plan

    async def review_plan(
        self, name: str, etag: str, comment: str = "", *, request_id: str = ""
    ) -> plan_pb2.Plan:
        """DRAFT -> REVIEWED, at the etag the reviewer read."""
        request = gov.ReviewPlanRequest(
            name=name, etag=etag, comment=comment, request_id=request_id
        )
        return (await self.call(self.governance.ReviewPlan, request)).plan

    async def approve_plan(
        self, name: str, etag: str, comment: str = "", *, request_id: str = ""
    ) -> plan_pb2.Plan:
        """REVIEWED -> APPROVED (never by the proposer)."""
        request = gov.ApprovePlanRequest(
            name=name, etag=etag, comment=comment, request_id=request_id
        )
        return (await self.call(self.governance.ApprovePlan, request)).plan

    async def reject_plan(
        self, name: str, etag: str, reason: str, *, request_id: str = ""
    ) -> plan_pb2.Plan:
        """Ends a plan under review, with a reason."""
        request = gov.RejectPlanRequest(name=name, etag=etag, reason=reason, request_id=request_id)
        return (await self.call(self.governance.RejectPlan, request)).plan

    async def activate_plan(
        self,
        name: str,
        etag: str,
        *,
        override_cooldown: bool = False,
        override_reason: str = "",
        request_id: str = "",
    ) -> gov.ActivatePlanResponse:
        """APPROVED -> ACTIVE (the plan it supersedes, if any, in the response)."""
        request = gov.ActivatePlanRequest(
            name=name,
            etag=etag,
            override_cooldown=override_cooldown,
            override_reason=override_reason,
            request_id=request_id,
        )
        return await self.call(self.governance.ActivatePlan, request)

    async def cancel_plan(
        self, name: str, etag: str, reason: str = "", *, request_id: str = ""
    ) -> plan_pb2.Plan:
        """Cancels a plan (its running execution too)."""
        request = gov.CancelPlanRequest(name=name, etag=etag, reason=reason, request_id=request_id)
        return (await self.call(self.governance.CancelPlan, request)).plan

    # ----------------------------------------------------------- governance

    async def governance_state(self) -> governance_state_pb2.GovernanceState:
        """The whole governance state."""
        request = gov.GetGovernanceStateRequest()
        return (await self.call(self.governance.GetGovernanceState, request)).state

    async def cooldown_status(self) -> governance_state_pb2.CooldownStatus:
        """When the next plan may be published."""
        request = gov.GetCooldownStatusRequest()
        return (await self.call(self.governance.GetCooldownStatus, request)).cooldown

    async def set_mode(
        self,
        mode: plan_pb2.GovernanceMode.ValueType,
        etag: str,
        reason: str = "",
        *,
        request_id: str = "",
    ) -> gov.SetGovernanceModeResponse:
        """Changes the governance mode (admin), at the mode's etag."""
        request = gov.SetGovernanceModeRequest(
            mode=mode, etag=etag, reason=reason, request_id=request_id
        )
        return await self.call(self.governance.SetGovernanceMode, request)

    async def validate_allocation(
        self, current: Targets, target: Targets, portfolio_value_usd: str
    ) -> gov.ValidateAllocationResponse:
        """What moving from ``current`` to ``target`` would take under the policy."""
        request = gov.ValidateAllocationRequest()
        _targets(request.current, current)
        _targets(request.target, target)
        request.portfolio_value_usd.value = portfolio_value_usd
        return await self.call(self.governance.ValidateAllocation, request)

    # -------------------------------------------------------------- signals

    async def get_signals(self) -> gov.GetSignalsResponse:
        """The signals in force, their age and freshness."""
        return await self.call(self.governance.GetSignals, gov.GetSignalsRequest())

    async def list_signals(self, filter: str = "") -> list[signals_pb2.SignalSet]:
        """Every published signal set, newest first."""
        request = gov.ListSignalsRequest(filter=filter)
        return await all_pages(self, self.governance.ListSignals, request, "signal_sets")

    async def publish_signals(
        self, signals: signals_pb2.SignalSet, *, request_id: str = ""
    ) -> gov.PublishSignalsResponse:
        """Publishes a signal set; the policy is derived again from it."""
        request = gov.PublishSignalsRequest(signals=signals, request_id=request_id)
        return await self.call(self.governance.PublishSignals, request)

    # -------------------------------------------------------------- freezes

    async def freeze(
        self,
        type: freeze_pb2.FreezeType.ValueType,
        reason: str,
        *,
        ttl: timedelta | None = None,
        expire_time: datetime | None = None,
        request_id: str = "",
    ) -> freeze_pb2.Freeze:
        """A freeze (FULL_FREEZE is the kill switch), until ``ttl`` or ``expire_time``."""
        request = gov.FreezeRequest(type=type, reason=reason, request_id=request_id)
        if ttl is not None:
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl.total_seconds())))
        if expire_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(expire_time)
            request.expire_time.CopyFrom(stamp)
        return (await self.call(self.governance.Freeze, request)).freeze

    async def unfreeze(
        self,
        name: str = "",
        *,
        all: bool = False,
        reason: str = "",
        request_id: str = "",
    ) -> list[freeze_pb2.Freeze]:
        """Ends one freeze (``name``) or every active one (``all``)."""
        request = gov.UnfreezeRequest(name=name, all=all, reason=reason, request_id=request_id)
        return list((await self.call(self.governance.Unfreeze, request)).freezes)

    async def get_freeze(self, name: str) -> freeze_pb2.Freeze:
        """One freeze."""
        return (await self.call(self.governance.GetFreeze, gov.GetFreezeRequest(name=name))).freeze

    async def list_freezes(
        self,
        *,
        include_ended: bool = False,
        types: Sequence[freeze_pb2.FreezeType.ValueType] = (),
        filter: str = "",
    ) -> list[freeze_pb2.Freeze]:
        """The active freezes (with ``include_ended``, every one), newest first."""
        request = gov.ListFreezesRequest(include_ended=include_ended, types=types, filter=filter)
        return await all_pages(self, self.governance.ListFreezes, request, "freezes")

    async def check_operation(
        self, operation: freeze_pb2.Operation.ValueType
    ) -> freeze_pb2.OperationVerdict:
        """Whether ``operation`` is allowed now, and which freezes block it."""
        request = gov.CheckOperationRequest(operation=operation)
        return (await self.call(self.governance.CheckOperation, request)).verdict

    # --------------------------------------------------------------- events

    def watch_freeze_events(
        self, after_sequence: int = 0, *, from_oldest: bool = False
    ) -> AsyncIterator[gov.WatchFreezeEventsResponse]:
        """Freeze events live (after ``after_sequence``, or from the oldest
        retained), resumed across cuts; heartbeats included."""
        first = from_oldest

        def open_stream(after: int) -> AsyncIterable[gov.WatchFreezeEventsResponse]:
            request = gov.WatchFreezeEventsRequest(
                after_sequence=after, from_oldest=first and after == 0
            )
            return self.governance.WatchFreezeEvents(request, metadata=self.metadata)

        return self.resume(open_stream, _event_position, after_sequence)

    def watch_governance_events(
        self,
        after_sequence: int = 0,
        *,
        kinds: Sequence[events_pb2.EventKind.ValueType] = (),
        from_oldest: bool = False,
    ) -> AsyncIterator[gov.WatchGovernanceEventsResponse]:
        """Every governance event (of ``kinds``) live, resumed across cuts."""

        def open_stream(after: int) -> AsyncIterable[gov.WatchGovernanceEventsResponse]:
            request = gov.WatchGovernanceEventsRequest(
                after_sequence=after, kinds=kinds, from_oldest=from_oldest and after == 0
            )
            return self.governance.WatchGovernanceEvents(request, metadata=self.metadata)

        return self.resume(open_stream, _event_position, after_sequence)

    # ---------------------------------------------------------------- audit

    async def list_audit_records(
        self,
        *,
        resource: str = "",
        principal: str = "",
        filter: str = "",
    ) -> list[audit_pb2.AuditRecord]:
        """Audit records (of ``resource``, by ``principal``), oldest first."""
        request = gov.ListAuditRecordsRequest(resource=resource, principal=principal, filter=filter)
        return await all_pages(self, self.governance.ListAuditRecords, request, "audit_records")
