"""The plan lifecycle through gRPC, on real SQLite and real PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import timedelta

import grpc

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from govex_server.store import tables
from tests.conftest import Harness
from tests.integration.helpers import activate, approve, approved_plan, propose, refused, review
from tests.support import md

P = plan_pb2


async def test_walk_propose_review_approve_activate(harness: Harness) -> None:
    h = harness
    draft = await propose(h, "alice", reason="rotate into ETH")
    assert draft.state == P.PLAN_STATE_DRAFT
    assert draft.proposed.principal == "alice"
    assert draft.proposed_under_mode == P.GOVERNANCE_MODE_MANUAL
    reviewed = await review(h, draft, "bob")
    approved = await approve(h, reviewed, "carol")
    result = await activate(h, approved, "carol")
    active = result.plan
    assert active.state == P.PLAN_STATE_ACTIVE
    assert [active.reviewed.principal, active.approved.principal] == ["bob", "carol"]
    assert active.activated.principal == "carol"
    assert active.version == 4
    assert len({draft.etag, reviewed.etag, approved.etag, active.etag}) == 4
    assert not result.HasField("superseded_plan")
    got = await h.gov.GetPlan(gov.GetPlanRequest(name=active.name), metadata=md("victor"))
    assert got.plan == active
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    assert state.active_plan.name == active.name
    counts = {c.state: c.count for c in state.plan_counts}
    assert counts[P.PLAN_STATE_ACTIVE] == 1
    assert sum(counts.values()) == 1
    assert not state.cooldown.publishing_allowed


async def test_every_mutation_is_audited_with_etags_chained(harness: Harness) -> None:
    h = harness
    plan = (await activate(h, await approved_plan(h))).plan
    records = await h.store.read(lambda uow: uow.audit.for_resource(plan.name))
    assert [r.rpc for r in records] == ["ProposePlan", "ReviewPlan", "ApprovePlan", "ActivatePlan"]
    assert [r.principal for r in records] == ["alice", "bob", "bob", "carol"]
    assert {r.principal_kind for r in records} == {"human"}
    assert {r.mode for r in records} == {"MANUAL"}
    assert records[0].etag_before is None
    for before, after in itertools.pairwise(records):
        assert after.etag_before == before.etag_after
    assert records[-1].etag_after == plan.etag


async def test_activation_supersedes_the_active_plan_after_the_cooldown(harness: Harness) -> None:
    h = harness
    first = (await activate(h, await approved_plan(h))).plan
    second = await approved_plan(h)
    h.clock.advance(timedelta(hours=24))
    result = await activate(h, second)
    assert result.plan.state == P.PLAN_STATE_ACTIVE
    assert result.superseded_plan.name == first.name
    assert result.superseded_plan.state == P.PLAN_STATE_CANCELLED
    assert result.superseded_plan.cancelled.comment == f"superseded by {second.name}"


async def test_reject_cancels_and_records_who_and_why(harness: Harness) -> None:
    h = harness
    reviewed = await review(h, await propose(h))
    response = await h.gov.RejectPlan(
        gov.RejectPlanRequest(name=reviewed.name, etag=reviewed.etag, reason="too much ETH"),
        metadata=md("carol"),
    )
    assert response.plan.state == P.PLAN_STATE_CANCELLED
    assert response.plan.rejected.principal == "carol"
    assert response.plan.rejected.comment == "too much ETH"


async def test_update_replaces_draft_targets_only_for_the_proposer(harness: Harness) -> None:
    h = harness
    draft = await propose(h, "alice")
    request = gov.UpdatePlanRequest()
    request.plan.name, request.plan.etag, request.plan.reason = (
        draft.name,
        draft.etag,
        "smaller BTC",
    )
    request.plan.targets.add(asset="BTC", weight_percent=40)
    request.plan.targets.add(asset="USDT", weight_percent=60)
    request.update_mask.paths[:] = ["targets", "reason"]
    error = await refused(h.gov.UpdatePlan(request, metadata=md("carol")))
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_PROPOSER")
    updated = (await h.gov.UpdatePlan(request, metadata=md("alice"))).plan
    assert [(t.asset, t.weight_percent) for t in updated.targets] == [("BTC", 40), ("USDT", 60)]
    assert updated.reason == "smaller BTC"
    assert updated.version == 2
    reviewed = await review(h, updated)
    request.plan.etag = reviewed.etag
    error = await refused(h.gov.UpdatePlan(request, metadata=md("alice")))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PLAN_STATE")


async def test_cancel_by_proposer_or_privileged_role_only(harness: Harness) -> None:
    h = harness
    carols = await propose(h, "carol")
    error = await refused(
        h.gov.CancelPlan(
            gov.CancelPlanRequest(name=carols.name, etag=carols.etag), metadata=md("alice")
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_PROPOSER")
    alices = await propose(h, "alice")
    cancelled = (
        await h.gov.CancelPlan(
            gov.CancelPlanRequest(name=alices.name, etag=alices.etag, reason="changed my mind"),
            metadata=md("alice"),
        )
    ).plan
    assert cancelled.state == P.PLAN_STATE_CANCELLED
    assert cancelled.cancelled.principal == "alice"
    by_operator = (
        await h.gov.CancelPlan(
            gov.CancelPlanRequest(name=carols.name, etag=carols.etag), metadata=md("carol")
        )
    ).plan
    assert by_operator.state == P.PLAN_STATE_CANCELLED


async def test_list_plans_pages_newest_first_and_filters_by_state(harness: Harness) -> None:
    h = harness
    names = [(await propose(h)).name for _ in range(7)]
    third = (await h.gov.GetPlan(gov.GetPlanRequest(name=names[2]), metadata=md("bob"))).plan
    await review(h, third)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        response = await h.gov.ListPlans(
            gov.ListPlansRequest(page_size=3, page_token=token), metadata=md("victor")
        )
        seen += [p.name for p in response.plans]
        pages += 1
        token = response.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    assert pages == 3
    reviewed = await h.gov.ListPlans(
        gov.ListPlansRequest(states=[P.PLAN_STATE_REVIEWED]), metadata=md("victor")
    )
    assert [p.name for p in reviewed.plans] == [names[2]]


async def test_idempotent_propose_returns_the_first_plan(harness: Harness) -> None:
    h = harness
    first = await propose(h, "alice", request_id="req-1")
    again = await propose(h, "alice", request_id="req-1")
    assert again == first
    other_principal = await propose(h, "carol", request_id="req-1")
    assert other_principal.name != first.name
    error = await refused(propose(h, "alice", (("BTC", 100.0),), request_id="req-1"))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")
    listed = await h.gov.ListPlans(gov.ListPlansRequest(), metadata=md("victor"))
    assert len(listed.plans) == 2


async def test_idempotent_transition_replays_instead_of_failing(harness: Harness) -> None:
    h = harness
    draft = await propose(h)
    request = gov.ReviewPlanRequest(name=draft.name, etag=draft.etag, request_id="rev-1")
    first = await h.gov.ReviewPlan(request, metadata=md("bob"))
    # The etag is stale now, but a repeat of the same request gets the first answer.
    second = await h.gov.ReviewPlan(request, metadata=md("bob"))
    assert second == first


async def test_mode_change_needs_admin_and_the_mode_etag(harness: Harness) -> None:
    h = harness
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("dana"))
    ).state
    request = gov.SetGovernanceModeRequest(
        mode=P.GOVERNANCE_MODE_AI_ASSISTED, etag=state.mode_etag, reason="pilot"
    )
    error = await refused(h.gov.SetGovernanceMode(request, metadata=md("carol")))
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    changed = await h.gov.SetGovernanceMode(request, metadata=md("dana"))
    assert changed.mode == P.GOVERNANCE_MODE_AI_ASSISTED
    assert changed.etag != state.mode_etag
    error = await refused(h.gov.SetGovernanceMode(request, metadata=md("dana")))
    assert (error.code, error.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert error.metadata["currentEtag"] == changed.etag
    records = await h.store.read(lambda uow: uow.audit.for_resource("governance/mode"))
    assert [(r.principal, r.details["to"]) for r in records] == [("dana", "AI_ASSISTED")]


async def test_ai_assisted_lets_ai_propose_but_not_review(harness: Harness) -> None:
    h = harness
    await set_mode(h, P.GOVERNANCE_MODE_AI_ASSISTED)
    plan = await propose(h, "model-7")
    assert plan.proposed.principal_kind == P.PRINCIPAL_KIND_AI
    error = await refused(review(h, plan, "model-7"))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODE_FORBIDS")
    assert (await review(h, plan, "bob")).state == P.PLAN_STATE_REVIEWED


async def test_full_ai_step_outside_the_bounds_waits_for_a_human(harness: Harness) -> None:
    h = harness
    await set_mode(h, P.GOVERNANCE_MODE_FULL_AI)
    plan = await propose(h, "model-7")
    error = await refused(review(h, plan, "model-7"))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MODE_FORBIDS")
    assert error.metadata["bound"] == "signals_fresh"
    # A human can still take the plan forward.
    assert (await review(h, plan, "bob")).state == P.PLAN_STATE_REVIEWED


async def set_mode(h: Harness, mode: P.GovernanceMode.ValueType) -> None:
    state = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("dana"))
    ).state
    await h.gov.SetGovernanceMode(
        gov.SetGovernanceModeRequest(mode=mode, etag=state.mode_etag), metadata=md("dana")
    )


def test_tables_module_lists_every_table() -> None:
    assert {t.name for t in tables.metadata.sorted_tables} == {
        "plans",
        "governance_mode",
        "audit_log",
        "audit_head",
        "idempotency_keys",
        "freezes",
        "events",
        "event_counter",
        "signal_sets",
        "policy_state",
        "executions",
        "orders",
        "daily_notional",
        "in_flight_notional",
        "exchange_accounts",
    }


async def test_governance_state_follows_every_write(harness: Harness) -> None:
    h = harness

    async def counts() -> dict[int, int]:
        state = (
            await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
        ).state
        return {c.state: c.count for c in state.plan_counts}

    assert sum((await counts()).values()) == 0
    draft = await propose(h)
    assert (await counts())[P.PLAN_STATE_DRAFT] == 1
    await review(h, draft)
    after = await counts()
    assert (after[P.PLAN_STATE_DRAFT], after[P.PLAN_STATE_REVIEWED]) == (0, 1)
    first = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    again = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    assert first.etag == again.etag
    await propose(h)
    changed = (
        await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    ).state
    assert changed.etag != first.etag


async def test_update_changes_only_what_the_mask_names(harness: Harness) -> None:
    h = harness
    draft = await propose(h, "alice")
    request = gov.UpdatePlanRequest()
    request.plan.CopyFrom(draft)
    request.plan.reason = "only the reason"
    del request.plan.targets[:]
    request.plan.targets.add(asset="ETH", weight_percent=100)  # not in the mask: ignored
    request.update_mask.paths[:] = ["reason"]
    updated = (await h.gov.UpdatePlan(request, metadata=md("alice"))).plan
    assert updated.reason == "only the reason"
    assert list(updated.targets) == list(draft.targets)
    # No mask: every updatable field that is set (here only the reason).
    implied = gov.UpdatePlanRequest()
    implied.plan.name, implied.plan.etag, implied.plan.reason = (
        updated.name,
        updated.etag,
        "implied",
    )
    again = (await h.gov.UpdatePlan(implied, metadata=md("alice"))).plan
    assert (again.reason, list(again.targets)) == ("implied", list(draft.targets))
    for paths, field in (
        (["state"], "update_mask.paths[0]"),
        (["reason", "targetz"], "update_mask.paths[1]"),
    ):
        bad = gov.UpdatePlanRequest()
        bad.CopyFrom(implied)
        bad.plan.etag = again.etag
        bad.update_mask.paths[:] = paths
        error = await refused(h.gov.UpdatePlan(bad, metadata=md("alice")))
        assert (error.code, error.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    # "*" with no targets: every updatable field, and targets are required.
    star = gov.UpdatePlanRequest()
    star.CopyFrom(implied)
    star.plan.etag = again.etag
    star.update_mask.paths[:] = ["*"]
    error = await refused(h.gov.UpdatePlan(star, metadata=md("alice")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields[0].startswith("plan.targets"), error.fields
