"""The stored form of every event: a serialized proto, written once and sent
to every subscriber as it is."""

from __future__ import annotations

from govex.governance.v1 import events_pb2
from govex_server.api.convert import (
    event_kind_to_pb,
    freeze_to_pb,
    freshness_to_pb,
    mode_to_pb,
    phase_to_pb,
    plan_to_pb,
    policy_to_pb,
    signals_to_pb,
    timestamp,
)
from govex_server.api.execution_convert import execution_event_payload, order_event_payload
from govex_server.domain.events import DomainEvent, ExecutionUpdate, OrderUpdate
from govex_server.domain.freezes import Freeze
from govex_server.domain.governance import ModeSetting
from govex_server.domain.phase import PhaseState
from govex_server.domain.plans import Plan
from govex_server.domain.policy import Freshness, Policy
from govex_server.domain.signals import SignalSet


def encode_event(event: DomainEvent, sequence: int) -> bytes:
    """A serialized GovernanceEvent, or an OrderEvent for order updates."""
    if isinstance(event.payload, OrderUpdate):
        update = event.payload
        return order_event_payload(update.order, update.execution_state, sequence, event.time)
    if isinstance(event.payload, ExecutionUpdate):
        return execution_event_payload(event.payload, sequence, event.time)
    out = events_pb2.GovernanceEvent(
        sequence=sequence,
        kind=event_kind_to_pb(event.kind),
        time=timestamp(event.time),
        actor=event.actor,
        resource=event.resource,
    )
    payload = event.payload
    if isinstance(payload, Plan):
        out.plan.CopyFrom(plan_to_pb(payload))
    elif isinstance(payload, Freeze):
        out.freeze.CopyFrom(freeze_to_pb(payload))
    elif isinstance(payload, ModeSetting):
        out.mode = mode_to_pb(payload.mode)
    elif isinstance(payload, Policy):
        out.policy.CopyFrom(policy_to_pb(payload))
    elif isinstance(payload, Freshness):
        out.freshness = freshness_to_pb(payload)
    elif isinstance(payload, PhaseState):
        out.phase.CopyFrom(phase_to_pb(payload))
    elif isinstance(payload, SignalSet):
        out.signals.CopyFrom(signals_to_pb(payload))
    return out.SerializeToString()
