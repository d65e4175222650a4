"""Bad input gets the DESIGN.md §2 status, the ErrorInfo reason and the field
named, and the store is unchanged (every table compared before and after)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from tests.conftest import Harness
from tests.integration.helpers import approve as approve_plan
from tests.integration.helpers import propose, refused, review
from tests.support import md, snapshot

C = grpc.StatusCode
UNKNOWN_PLAN = "plans/01HZZZZZZZZZZZZZZZZZZZZZZZ"


@dataclass
class World:
    """A draft by alice, a reviewed plan by carol (so approvable by others)."""

    h: Harness
    draft: plan_pb2.Plan
    reviewed: plan_pb2.Plan
    approved: plan_pb2.Plan
    stale_etag: str


def targets(*pairs: tuple[str, float]) -> gov.ProposePlanRequest:
    request = gov.ProposePlanRequest(reason="bad")
    for asset, weight in pairs:
        request.targets.add(asset=asset, weight_percent=weight)
    return request


def approve(w: World, who: str, **fields: Any) -> Awaitable[Any]:
    request = gov.ApprovePlanRequest(name=w.reviewed.name, etag=w.reviewed.etag)
    for key, value in fields.items():
        setattr(request, key, value)
    return w.h.gov.ApprovePlan(request, metadata=md(who))


Case = Callable[[World], Awaitable[Any]]
CASES: dict[str, tuple[Case, grpc.StatusCode, str, str | None]] = {
    "weights_not_summing_to_100": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", 50), ("USDT", 45)), metadata=md("alice")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets",
    ),
    "negative_weight": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", -10), ("USDT", 110)), metadata=md("alice")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets[0].weight_percent",
    ),
    "zero_weight": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", 0), ("USDT", 100)), metadata=md("alice")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets[0].weight_percent",
    ),
    "nan_weight": (
        lambda w: w.h.gov.ProposePlan(
            targets(("USDT", 100), ("BTC", math.nan)), metadata=md("alice")
        ),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets[1].weight_percent",
    ),
    "duplicate_asset": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", 50), ("BTC", 50)), metadata=md("alice")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets[1].asset",
    ),
    "empty_asset": (
        lambda w: w.h.gov.ProposePlan(targets(("", 50), ("BTC", 50)), metadata=md("alice")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets[0].asset",
    ),
    "201_assets": (
        lambda w: w.h.gov.ProposePlan(
            targets(*[(f"A{i}", 100 / 201) for i in range(201)]), metadata=md("alice")
        ),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "targets",
    ),
    "unknown_plan": (
        lambda w: w.h.gov.GetPlan(gov.GetPlanRequest(name=UNKNOWN_PLAN), metadata=md("victor")),
        C.NOT_FOUND,
        "NOT_FOUND",
        None,
    ),
    "unknown_plan_on_a_mutation": (
        lambda w: w.h.gov.ReviewPlan(
            gov.ReviewPlanRequest(name=UNKNOWN_PLAN, etag='W/"x"'), metadata=md("bob")
        ),
        C.NOT_FOUND,
        "NOT_FOUND",
        None,
    ),
    "malformed_resource_name": (
        lambda w: w.h.gov.GetPlan(gov.GetPlanRequest(name="plan/42"), metadata=md("victor")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "name",
    ),
    "stale_etag": (
        lambda w: approve(w, "bob", etag=w.stale_etag),
        C.ABORTED,
        "ETAG_MISMATCH",
        None,
    ),
    "missing_etag": (
        lambda w: approve(w, "bob", etag=""),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "etag",
    ),
    "unknown_enum_in_filter": (
        lambda w: w.h.gov.ListPlans(gov.ListPlansRequest(states=[99]), metadata=md("victor")),  # type: ignore[list-item]
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "states[0]",
    ),
    "unknown_enum_mode": (
        lambda w: w.h.gov.SetGovernanceMode(
            gov.SetGovernanceModeRequest(mode=42, etag='W/"x"'),  # type: ignore[arg-type]
            metadata=md("dana"),
        ),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "mode",
    ),
    "page_size_minus_one": (
        lambda w: w.h.gov.ListPlans(gov.ListPlansRequest(page_size=-1), metadata=md("victor")),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "page_size",
    ),
    "garbage_page_token": (
        lambda w: w.h.gov.ListPlans(
            gov.ListPlansRequest(page_token="not-a-token"), metadata=md("victor")
        ),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "page_token",
    ),
    "transition_from_wrong_state": (
        lambda w: w.h.gov.ActivatePlan(
            gov.ActivatePlanRequest(name=w.draft.name, etag=w.draft.etag), metadata=md("carol")
        ),
        C.FAILED_PRECONDITION,
        "PLAN_STATE",
        None,
    ),
    "self_approval": (
        lambda w: approve(w, "carol"),
        C.PERMISSION_DENIED,
        "SELF_APPROVAL",
        None,
    ),
    "ai_proposes_in_manual_mode": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", 100)), metadata=md("model-7")),
        C.FAILED_PRECONDITION,
        "MODE_FORBIDS",
        None,
    ),
    "no_token": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", 100))),
        C.UNAUTHENTICATED,
        "MISSING_CREDENTIALS",
        None,
    ),
    "unknown_token": (
        lambda w: w.h.gov.ProposePlan(
            targets(("BTC", 100)), metadata=(("authorization", "Bearer who-am-i"),)
        ),
        C.UNAUTHENTICATED,
        "UNKNOWN_TOKEN",
        None,
    ),
    "token_without_the_role": (
        lambda w: w.h.gov.ProposePlan(targets(("BTC", 100)), metadata=md("victor")),
        C.PERMISSION_DENIED,
        "ROLE_REQUIRED",
        None,
    ),
    "override_by_non_admin": (
        lambda w: w.h.gov.ActivatePlan(
            gov.ActivatePlanRequest(
                name=w.approved.name,
                etag=w.approved.etag,
                override_cooldown=True,
                override_reason="now",
            ),
            metadata=md("carol"),
        ),
        C.PERMISSION_DENIED,
        "OVERRIDE_FORBIDDEN",
        None,
    ),
    "malformed_request_id": (
        lambda w: w.h.gov.ProposePlan(
            gov.ProposePlanRequest(
                targets=[plan_pb2.TargetWeight(asset="BTC", weight_percent=100)],
                request_id="has spaces",
            ),
            metadata=md("alice"),
        ),
        C.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "request_id",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_input_is_refused_and_nothing_is_written(harness: Harness, case: str) -> None:
    h = harness
    draft = await propose(h, "alice")
    reviewed_by_carol = await review(h, await propose(h, "carol"), "bob")
    approved = await approve_plan(h, await review(h, await propose(h, "alice")))
    stale = (await propose(h, "carol")).etag  # an etag of version 1, not of reviewed
    world = World(h, draft, reviewed_by_carol, approved, stale)
    call, code, reason, field = CASES[case]
    await h.settle()
    before = await snapshot(h.store)
    error = await refused(call(world))
    after = await snapshot(h.store)
    assert (error.code, error.reason, error.domain) == (code, reason, "govex")
    if field is not None:
        assert field in error.fields, error.field_violations
    if reason == "ETAG_MISMATCH":
        assert error.metadata["currentEtag"] == reviewed_by_carol.etag
    assert after == before
