"""GetGovernanceState served from a snapshot serialized once per change.

Everything in the state but three fields changes only when the stored facts
or the policy change, and those changes are what the etag covers. So the
message without the time-dependent fields (read_time, cooldown, signals_age)
is built and serialized once per etag; a call serializes only those three
and appends them. Protobuf's wire format merges concatenated message
encodings field by field, so the bytes sent are exactly the full message."""

from __future__ import annotations

from datetime import datetime

from govex.governance.v1 import governance_state_pb2
from govex_server.api import convert
from govex_server.api.streams import length_delimited
from govex_server.domain.plans import combined_etag
from govex_server.services.governance_state import GovernanceSnapshot
from govex_server.services.policy import PolicyView

# GetGovernanceStateResponse.state is field 1, length-delimited.
_STATE_TAG = b"\x0a"


class GovernanceStateFrames:
    """The serialized GetGovernanceStateResponse, rebuilt on change only."""

    def __init__(self) -> None:
        self._etag = ""
        self._static = b""

    def frame(self, snap: GovernanceSnapshot, view: PolicyView, now: datetime) -> bytes:
        """The response for this snapshot and policy view, read at ``now``."""
        # The etag covers the policy too (derive_time changes with every
        # derivation that wrote).
        etag = combined_etag(snap.etag, view.policy.derive_time.isoformat(), view.freshness.value)
        if etag != self._etag:
            self._static = _static_state(snap, view, etag).SerializeToString()
            self._etag = etag
        moving = governance_state_pb2.GovernanceState(
            read_time=convert.timestamp(now), cooldown=convert.cooldown_to_pb(snap.cooldown)
        )
        if view.age is not None:
            moving.signals_age.CopyFrom(convert.duration(view.age))
        state = self._static + moving.SerializeToString()
        return _STATE_TAG + length_delimited(state)


def _static_state(
    snap: GovernanceSnapshot, view: PolicyView, etag: str
) -> governance_state_pb2.GovernanceState:
    state = governance_state_pb2.GovernanceState(
        mode=convert.mode_to_pb(snap.mode.mode), mode_etag=snap.mode.etag, etag=etag
    )
    if snap.active_plan is not None:
        state.active_plan.CopyFrom(convert.plan_to_pb(snap.active_plan))
    for plan_state, count in snap.counts.items():
        state.plan_counts.add(state=convert.plan_state_to_pb(plan_state), count=count)
    state.active_freezes.extend(convert.freeze_to_pb(f) for f in snap.freezes)
    state.operation_verdicts.extend(convert.verdict_to_pb(v) for v in snap.verdicts)
    state.policy.CopyFrom(convert.policy_to_pb(view.policy))
    state.signals_freshness = convert.freshness_to_pb(view.freshness)
    state.phase.CopyFrom(convert.phase_to_pb(view.phase))
    return state
