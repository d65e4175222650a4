"""GetGovernanceState served from a snapshot serialized once per change.

Everything in the state but three fields changes only when the stored facts
or the policy change, and those changes are what the etag covers. So the
message without the time-dependent fields (read_time, cooldown, signals_age)
is built and serialized once per etag; a call serializes only those three
and appends them. Protobuf's wire format merges concatenated message
encodings field by field, so the bytes sent are exactly the full message.

A whole frame is also answered again, as it is, for at most ``REUSE_FOR``
after it was read, while the stored facts and the policy it was built from
are still the ones the read caches hold (every change drops them before the
changing call is answered). On PostgreSQL, where other replicas write, a held
value is checked against the store first, so frames are not reused there.
A reused frame's read_time says when it was read, and its cooldown, freezes
and signals' age are those of that moment: what time alone moves shows at
most ``REUSE_FOR`` late, never wrong for its read_time. Under load this saves
most calls the snapshot, the policy view and the encoding; with no load
every call reads anew."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from govex.governance.v1 import governance_state_pb2
from govex_server.api import convert
from govex_server.api.streams import length_delimited
from govex_server.domain.plans import combined_etag
from govex_server.services.governance_state import GovernanceSnapshot
from govex_server.services.policy import PolicyView
from govex_server.services.read_cache import ReadCache

REUSE_FOR = timedelta(milliseconds=1)

# GetGovernanceStateResponse.state is field 1, length-delimited.
_STATE_TAG = b"\x0a"


class GovernanceStateFrames:
    """The serialized GetGovernanceStateResponse, rebuilt on change only."""

    def __init__(
        self, facts: ReadCache[Any] | None = None, policy: ReadCache[Any] | None = None
    ) -> None:
        """``facts`` and ``policy``: the read caches the snapshot and the
        policy view are served from (without them, no frame is reused)."""
        self._etag = ""
        self._static = b""
        self._caches = (facts, policy)
        self._last = b""
        self._last_read = datetime.min
        self._last_inputs: tuple[int, int] | None = None

    def reusable(self, inputs: tuple[int, int] | None, now: datetime) -> bytes | None:
        """The last frame, when it was read from the very inputs named by
        ``inputs`` (the versions of the held facts and policy) less than
        REUSE_FOR before ``now``; None otherwise."""
        if (
            inputs is None
            or inputs != self._last_inputs
            or not timedelta(0) <= now - self._last_read < REUSE_FOR
        ):
            return None
        return self._last

    def inputs(self) -> tuple[int, int] | None:
        """The versions of the values the two read caches hold (None when
        either holds nothing to trust)."""
        facts, policy = (c.version() if c is not None else None for c in self._caches)
        return None if facts is None or policy is None else (facts, policy)

    def generations(self) -> tuple[int, int] | None:
        """Where the two caches' change counts stand (before a build)."""
        facts, policy = self._caches
        return None if facts is None or policy is None else (facts.generation, policy.generation)

    def keep(self, frame: bytes, before: tuple[int, int] | None, read: datetime) -> None:
        """Keeps ``frame``, read at ``read``, for reuse only if nothing changed
        since ``generations()`` said ``before``: then it was built from what
        the caches hold now."""
        after = self.inputs()
        self.remember(frame, after if before is not None and after == before else None, read)

    def remember(self, frame: bytes, inputs: tuple[int, int] | None, read: datetime) -> None:
        """Keeps ``frame``, read at ``read`` from the inputs named by
        ``inputs`` (None: not known to be what is held, so never reused)."""
        self._last_inputs = inputs
        self._last, self._last_read = frame, read

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
