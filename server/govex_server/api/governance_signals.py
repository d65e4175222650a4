"""GovernanceService's signal, policy and audit RPCs (a part of the
servicer, kept apart to keep each module small): proto in, domain call,
proto out."""

from __future__ import annotations

from govex.governance.v1 import audit_pb2, governance_state_pb2
from govex.governance.v1 import governance_service_pb2 as pb
from govex_server.api import convert
from govex_server.api.rpc import mutation, unary
from govex_server.domain import filters, list_filters
from govex_server.domain.allocation import evaluate
from govex_server.domain.errors import invalid_field
from govex_server.domain.principals import Principal
from govex_server.services.audit import AuditLog
from govex_server.services.policy import PolicyService, PolicyView
from govex_server.services.recorder import Call
from govex_server.store.audit_repositories import AuditQuery, StoredAuditRecord


class SignalAndAuditRpcs:
    """GetSignals, ListSignals, PublishSignals, ValidateAllocation and
    ListAuditRecords."""

    _policy: PolicyService
    _audit: AuditLog
    _max_days: int

    @unary
    async def GetSignals(
        self, request: pb.GetSignalsRequest, principal: Principal
    ) -> pb.GetSignalsResponse:
        view = await self._policy.view()
        response = pb.GetSignalsResponse(freshness=convert.freshness_to_pb(view.freshness))
        if view.signals is not None and view.age is not None:
            response.signals.CopyFrom(convert.signals_to_pb(view.signals))
            response.age.CopyFrom(convert.duration(view.age))
        return response

    @unary
    async def ListSignals(
        self, request: pb.ListSignalsRequest, principal: Principal
    ) -> pb.ListSignalsResponse:
        sets, token = await self._policy.history(
            request.page_size, request.page_token, request.filter
        )
        return pb.ListSignalsResponse(
            signal_sets=[convert.signals_to_pb(s) for s in sets], next_page_token=token
        )

    @mutation(lambda self, view: _published_to_pb(view))
    async def PublishSignals(self, request: pb.PublishSignalsRequest, call: Call) -> PolicyView:
        if not request.HasField("signals"):
            raise invalid_field("signals", "required")
        signals = convert.signals_from_pb(request.signals)
        return await self._policy.publish(call.principal, signals, call)

    @unary
    async def ValidateAllocation(
        self, request: pb.ValidateAllocationRequest, principal: Principal
    ) -> pb.ValidateAllocationResponse:
        view = await self._policy.view()
        value = convert.optional_decimal(request, "portfolio_value_usd")
        verdict = evaluate(
            convert.targets_from_pb(list(request.current)),
            convert.targets_from_pb(list(request.target)),
            value,
            view.policy,
            view.now,
            self._max_days,
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
            response.estimated_cost_usd.CopyFrom(convert.decimal(verdict.estimated_cost_usd))
        for change in verdict.changes:
            response.changes.add(
                asset=change.asset,
                current_percent=change.current,
                target_percent=change.target,
                delta_percent=change.delta,
                inside_no_trade_zone=change.inside_no_trade_zone,
            )
        return response

    @unary
    async def ListAuditRecords(
        self, request: pb.ListAuditRecordsRequest, principal: Principal
    ) -> pb.ListAuditRecordsResponse:
        query = AuditQuery(
            resource=request.resource,
            principal=request.principal,
            since=convert.optional_time(request, "start_time"),
            until=convert.optional_time(request, "end_time"),
            conditions=tuple(filters.parse(request.filter, list_filters.AUDIT_RECORDS)),
        )
        page = await self._audit.list(query, request.page_size, request.page_token)
        return pb.ListAuditRecordsResponse(
            audit_records=[_audit_to_pb(r) for r in page.records],
            next_page_token=page.next_page_token,
            head_sequence=page.head_sequence,
            head_hash=page.head_hash,
        )

    # Streams yield pre-serialized frames (see api/streams.py and
    # api/registration.py), hence bytes instead of the response messages.


def _published_to_pb(view: PolicyView) -> pb.PublishSignalsResponse:
    assert view.signals is not None
    return pb.PublishSignalsResponse(
        signals=convert.signals_to_pb(view.signals),
        policy=convert.policy_to_pb(view.policy),
        freshness=convert.freshness_to_pb(view.freshness),
        phase=convert.phase_to_pb(view.phase),
    )


def _audit_to_pb(stored: StoredAuditRecord) -> audit_pb2.AuditRecord:
    record = stored.record
    return audit_pb2.AuditRecord(
        sequence=stored.sequence,
        time=convert.timestamp(record.at),
        principal=record.principal,
        principal_kind=record.principal_kind,
        governance_mode=record.mode,
        rpc=record.rpc,
        resource=record.resource,
        etag_before=record.etag_before or "",
        etag_after=record.etag_after or "",
        reason=record.reason,
        content=stored.content,
        previous_hash=stored.previous_hash,
        hash=stored.hash,
    )
