"""Four eyes, governance modes and the cooldown, with the test clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from govex_server.domain.clock import ManualClock
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.governance import (
    GOVERNED_STEPS,
    BoundViolation,
    CooldownStatus,
    GovernanceMode,
    check_cooldown,
    check_propose,
    check_step,
    cooldown_hours_valid,
)
from govex_server.domain.plans import Plan, PlanAction, Step
from govex_server.domain.principals import Principal, PrincipalKind, Role
from tests.unit.test_plan_lifecycle import NOW, make_plan

ALICE = Principal("alice", PrincipalKind.HUMAN, frozenset({Role.PROPOSER, Role.APPROVER}))
BOB = Principal("bob", PrincipalKind.HUMAN, frozenset({Role.APPROVER}))
DANA = Principal("dana", PrincipalKind.HUMAN, frozenset({Role.ADMIN}))
MODEL = Principal("model-7", PrincipalKind.AI, frozenset({Role.PROPOSER, Role.APPROVER}))
OTHER_AI = Principal("model-9", PrincipalKind.AI, frozenset({Role.APPROVER}))
M = GovernanceMode


def plan_by(principal: Principal) -> Plan:
    return replace(make_plan(), proposed=Step(principal.name, principal.kind, NOW))


def refusal(fn: Callable[..., object], *args: object) -> GovexError:
    with pytest.raises(GovexError) as caught:
        fn(*args)
    return caught.value


# ---------------------------------------------------------------- four eyes


@pytest.mark.parametrize("mode", list(M))
def test_approve_by_proposer_is_permission_denied(mode: GovernanceMode) -> None:
    error = refusal(check_step, mode, plan_by(ALICE), ALICE, PlanAction.APPROVE)
    assert error.category is Category.PERMISSION_DENIED
    assert error.reason == "SELF_APPROVAL"


@pytest.mark.parametrize("mode", list(M))
def test_approve_by_another_human_is_allowed(mode: GovernanceMode) -> None:
    check_step(mode, plan_by(ALICE), BOB, PlanAction.APPROVE)


@pytest.mark.parametrize("action", [PlanAction.REVIEW, PlanAction.ACTIVATE, PlanAction.REJECT])
def test_proposer_may_take_the_other_steps(action: PlanAction) -> None:
    check_step(M.MANUAL, plan_by(ALICE), ALICE, action)


# -------------------------------------------------------------------- modes


def test_ai_proposal_in_manual_mode_is_mode_forbids() -> None:
    error = refusal(check_propose, M.MANUAL, MODEL)
    assert error.category is Category.FAILED_PRECONDITION
    assert error.reason == "MODE_FORBIDS"


@pytest.mark.parametrize("mode", [M.AI_ASSISTED, M.FULL_AI])
def test_ai_may_propose_outside_manual(mode: GovernanceMode) -> None:
    check_propose(mode, MODEL)


@pytest.mark.parametrize("mode", list(M))
def test_humans_propose_in_every_mode(mode: GovernanceMode) -> None:
    check_propose(mode, ALICE)


@pytest.mark.parametrize("mode", [M.MANUAL, M.AI_ASSISTED])
@pytest.mark.parametrize("action", GOVERNED_STEPS)
def test_ai_steps_outside_full_ai_are_mode_forbids(
    mode: GovernanceMode, action: PlanAction
) -> None:
    error = refusal(check_step, mode, plan_by(MODEL), MODEL, action)
    assert error.reason == "MODE_FORBIDS"
    assert error.metadata["mode"] == mode.value


@pytest.mark.parametrize("action", GOVERNED_STEPS)
def test_ai_in_full_ai_advances_its_own_plan_within_bounds(action: PlanAction) -> None:
    check_step(M.FULL_AI, plan_by(MODEL), MODEL, action, [])


@pytest.mark.parametrize("action", GOVERNED_STEPS)
def test_ai_in_full_ai_may_not_advance_another_principals_plan(action: PlanAction) -> None:
    for proposer in (ALICE, MODEL):
        error = refusal(check_step, M.FULL_AI, plan_by(proposer), OTHER_AI, action)
        assert error.reason == "MODE_FORBIDS"


def test_ai_self_approval_in_full_ai_is_the_allowed_exception() -> None:
    check_step(M.FULL_AI, plan_by(MODEL), MODEL, PlanAction.APPROVE, [])


def test_a_failed_bound_is_mode_forbids_naming_the_bound() -> None:
    bounds = [BoundViolation("no_freeze", "a FULL_FREEZE is active"), BoundViolation("x", "y")]
    error = refusal(check_step, M.FULL_AI, plan_by(MODEL), MODEL, PlanAction.ACTIVATE, bounds)
    assert error.reason == "MODE_FORBIDS"
    assert error.metadata["bound"] == "no_freeze"
    assert error.metadata["bounds"] == "no_freeze,x"
    assert "waits for a human" in error.message


def test_cancel_is_not_a_governed_step() -> None:
    with pytest.raises(ValueError, match="not a governed step"):
        check_step(M.MANUAL, plan_by(MODEL), MODEL, PlanAction.CANCEL)


# ----------------------------------------------------------------- cooldown


def status(
    clock: ManualClock, hours_ago: float | None, cooldown_hours: float = 24
) -> CooldownStatus:
    last = None if hours_ago is None else clock.now() - timedelta(hours=hours_ago)
    return CooldownStatus(timedelta(hours=cooldown_hours), last, "plans/x", clock.now())


def test_no_activation_ever_allows_publishing() -> None:
    clock = ManualClock()
    s = status(clock, None)
    assert s.publishing_allowed
    assert s.remaining == timedelta(0)
    assert s.next_allowed_time == clock.now()


def test_remaining_counts_down_with_the_clock() -> None:
    clock = ManualClock()
    last = clock.now()
    for elapsed_hours, remaining_hours in [(0, 24), (1, 23), (23.5, 0.5), (24, 0), (30, 0)]:
        now = last + timedelta(hours=elapsed_hours)
        s = CooldownStatus(timedelta(hours=24), last, "plans/x", now)
        assert s.remaining == timedelta(hours=remaining_hours)
        assert s.publishing_allowed is (remaining_hours == 0)
        assert s.next_allowed_time == max(now, last + timedelta(hours=24))


def test_activation_inside_cooldown_is_refused_with_retry_info() -> None:
    clock = ManualClock()
    error = refusal(check_cooldown, status(clock, 20), BOB, False, "")
    assert error.reason == "COOLDOWN"
    assert error.category is Category.FAILED_PRECONDITION
    assert error.retry_after_seconds == pytest.approx(4 * 3600)
    assert error.metadata["remainingSeconds"] == str(4 * 3600)


def test_admin_override_with_reason_passes_the_cooldown() -> None:
    check_cooldown(status(ManualClock(), 1), DANA, True, "incident 42: de-risk now")


def test_override_by_non_admin_is_permission_denied() -> None:
    error = refusal(check_cooldown, status(ManualClock(), 1), BOB, True, "please")
    assert error.category is Category.PERMISSION_DENIED
    assert error.reason == "OVERRIDE_FORBIDDEN"


def test_override_without_reason_is_invalid_argument() -> None:
    error = refusal(check_cooldown, status(ManualClock(), 1), DANA, True, "  ")
    assert error.category is Category.INVALID_ARGUMENT
    assert error.field_violations[0].field == "override_reason"


@pytest.mark.parametrize(
    ("hours", "valid"), [(0.5, False), (1, True), (24, True), (168, True), (169, False)]
)
def test_cooldown_range_is_1_to_168_hours(hours: float, valid: bool) -> None:
    assert cooldown_hours_valid(hours) is valid
