"""The transition table, exhaustively: every state x every action."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from govex_server.domain.errors import Category, GovexError
from govex_server.domain.plans import (
    TRANSITIONS,
    Plan,
    PlanAction,
    PlanState,
    Step,
    Target,
    check_etag,
    next_state,
    plan_etag,
)
from govex_server.domain.principals import PrincipalKind

S, A = PlanState, PlanAction

# Written out independently of the implementation: what DESIGN.md §3 says.
EXPECTED = {
    (S.DRAFT, A.UPDATE): S.DRAFT,
    (S.DRAFT, A.REVIEW): S.REVIEWED,
    (S.DRAFT, A.CANCEL): S.CANCELLED,
    (S.REVIEWED, A.APPROVE): S.APPROVED,
    (S.REVIEWED, A.REJECT): S.CANCELLED,
    (S.REVIEWED, A.CANCEL): S.CANCELLED,
    (S.APPROVED, A.ACTIVATE): S.ACTIVE,
    (S.APPROVED, A.CANCEL): S.CANCELLED,
    (S.ACTIVE, A.EXECUTE): S.ACTIVE,
    (S.ACTIVE, A.COMPLETE): S.EXECUTED,
    (S.ACTIVE, A.SUPERSEDE): S.CANCELLED,
    (S.ACTIVE, A.CANCEL): S.CANCELLED,
}

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_plan(state: PlanState = S.DRAFT, version: int = 1) -> Plan:
    return Plan(
        id="01HZZZZZZZZZZZZZZZZZZZZZZZ",
        state=state,
        targets=(Target("BTC", 60.0), Target("USDT", 40.0)),
        reason="test",
        version=version,
        proposed=Step("alice", PrincipalKind.HUMAN, NOW),
        proposed_under_mode="MANUAL",
        create_time=NOW,
        update_time=NOW,
    )


def test_table_is_exactly_the_specified_one() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("state", "action"), list(itertools.product(PlanState, PlanAction)))
def test_every_state_and_action(state: PlanState, action: PlanAction) -> None:
    if (state, action) in EXPECTED:
        assert next_state("plans/x", state, action) is EXPECTED[(state, action)]
    else:
        with pytest.raises(GovexError) as caught:
            next_state("plans/x", state, action)
        assert caught.value.category is Category.FAILED_PRECONDITION
        assert caught.value.reason == "PLAN_STATE"
        assert caught.value.metadata["state"] == state.value
        assert caught.value.precondition_violations[0].subject == "plans/x"


@pytest.mark.parametrize("state", [S.EXECUTED, S.CANCELLED])
def test_terminal_states_allow_nothing(state: PlanState) -> None:
    assert state.terminal
    assert not [a for (s, a) in TRANSITIONS if s is state]


@pytest.mark.parametrize("state", [S.DRAFT, S.REVIEWED, S.APPROVED, S.ACTIVE])
def test_cancel_is_allowed_from_every_non_terminal_state(state: PlanState) -> None:
    assert not state.terminal
    assert next_state("plans/x", state, A.CANCEL) is S.CANCELLED


def test_moved_bumps_version_and_changes_etag() -> None:
    plan = make_plan()
    reviewed = plan.moved(A.REVIEW, NOW)
    assert reviewed.state is S.REVIEWED
    assert reviewed.version == plan.version + 1
    assert reviewed.etag != plan.etag
    assert plan.state is S.DRAFT  # the original is untouched


def test_etag_depends_on_id_and_version_only() -> None:
    assert plan_etag("A", 1) == plan_etag("A", 1)
    assert plan_etag("A", 1) != plan_etag("A", 2)
    assert plan_etag("A", 1) != plan_etag("B", 1)
    later = make_plan()
    assert later.etag == make_plan().etag  # no clock in it


def test_stale_etag_is_aborted_with_the_current_one() -> None:
    with pytest.raises(GovexError) as caught:
        check_etag("plans/x", 'W/"old"', 'W/"new"')
    assert caught.value.category is Category.ABORTED
    assert caught.value.reason == "ETAG_MISMATCH"
    assert caught.value.metadata["currentEtag"] == 'W/"new"'
