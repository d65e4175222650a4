"""Why a plan cannot be executed now, by kind: ValidatePlan lists every
blocker with its text, and ExecutePlan refuses with the reason code of the
weightiest kind (a freeze before the policy's mode, before a target the
account cannot reach, and so on), never by searching the texts."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Blocker(enum.Enum):
    """A kind of blocking reason; its value is the reason code ExecutePlan
    refuses with. Declared weightiest first."""

    FROZEN = "FROZEN"
    POLICY_FREEZE = "POLICY_FREEZE"
    TARGET_UNREACHABLE = "TARGET_UNREACHABLE"
    PRICE_STEP = "PRICE_STEP"
    SAFETY_REJECTED = "SAFETY_REJECTED"
    PLAN_STATE = "PLAN_STATE"


_WEIGHT = {kind: rank for rank, kind in enumerate(Blocker)}


def refusal_reason(kinds: Iterable[Blocker]) -> str:
    """The reason code for a refusal with these blockers (PLAN_STATE when
    there are none: the caller refuses for the plan's state)."""
    return min(kinds, key=_WEIGHT.__getitem__, default=Blocker.PLAN_STATE).value
