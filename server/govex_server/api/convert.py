"""Domain <-> proto translation for the governance API."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.type import decimal_pb2

from govex.controls.v1 import freeze_pb2, policy_pb2
from govex.governance.v1 import events_pb2, governance_state_pb2, plan_pb2, signals_pb2
from govex_server.domain import money
from govex_server.domain.errors import invalid_field
from govex_server.domain.events import EventKind
from govex_server.domain.freezes import Freeze, FreezeType, Operation, Verdict
from govex_server.domain.governance import CooldownStatus, GovernanceMode
from govex_server.domain.phase import Phase, PhaseState
from govex_server.domain.plans import Plan, PlanState, Step, Target
from govex_server.domain.policy import Freshness, Policy
from govex_server.domain.principals import PrincipalKind
from govex_server.domain.signals import PHASE_INPUTS, SCALARS, Regime, SignalSet

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp of an aware datetime. By arithmetic on the
    timedelta: ``Timestamp.FromDatetime`` took 5% of the writer thread's
    time (every event carries several times)."""
    out = timestamp_pb2.Timestamp()
    set_timestamp(out, value)
    return out


def set_timestamp(out: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Sets a message's Timestamp field in place to an aware datetime (no
    Timestamp made and then copied in)."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are refused: every time is UTC-aware")
    delta = value - _EPOCH
    out.seconds = delta.days * 86_400 + delta.seconds
    out.nanos = delta.microseconds * 1000


def optional_time(message: Message, field: str) -> datetime | None:
    """An optional Timestamp field as an aware UTC datetime (its range was
    checked by the interceptor), or None when unset."""
    if not message.HasField(field):
        return None
    value: timestamp_pb2.Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def decimal(value: Decimal) -> decimal_pb2.Decimal:
    """An exact amount as a google.type.Decimal (plain notation)."""
    return decimal_pb2.Decimal(value=money.text(value))


def optional_decimal(message: Message, field: str) -> Decimal | None:
    """An optional google.type.Decimal field as a Decimal, or None when unset;
    INVALID_ARGUMENT naming ``field`` when it is not a decimal."""
    if not message.HasField(field):
        return None
    value: decimal_pb2.Decimal = getattr(message, field)
    return money.parse(value.value, f"{field}.value")


def duration(value: timedelta) -> duration_pb2.Duration:
    """A protobuf Duration."""
    d = duration_pb2.Duration()
    d.FromTimedelta(value)
    return d


E = TypeVar("E", bound=enum.Enum)


def enum_from_pb(wrapper: Any, prefix: str, domain: type[E], value: int, field: str) -> E:
    """The domain value of a proto enum value; unspecified or unknown values
    (proto3 enums are open) are INVALID_ARGUMENT naming ``field``, with the
    values that are accepted."""
    names = [n for n, _ in wrapper.items() if not n.endswith("_UNSPECIFIED")]
    if value == 0 or value not in wrapper.values():
        accepted = ", ".join(n.removeprefix(prefix) for n in names)
        raise invalid_field(field, f"{value} is not one of {accepted}")
    return domain(wrapper.Name(value).removeprefix(prefix))


# Enum translations looked up in a dict: EnumTypeWrapper.Value on a
# formatted name cost more than the rest of a plan's translation.
_PLAN_STATES = {s: plan_pb2.PlanState.Value(f"PLAN_STATE_{s.value}") for s in PlanState}
_MODES = {m: plan_pb2.GovernanceMode.Value(f"GOVERNANCE_MODE_{m.value}") for m in GovernanceMode}
_MODES_BY_TEXT = {m.value: value for m, value in _MODES.items()}
_KINDS = {
    PrincipalKind.HUMAN: plan_pb2.PRINCIPAL_KIND_HUMAN,
    PrincipalKind.AI: plan_pb2.PRINCIPAL_KIND_AI,
}


def plan_state_to_pb(state: PlanState) -> plan_pb2.PlanState.ValueType:
    """PlanState.DRAFT -> PLAN_STATE_DRAFT."""
    return _PLAN_STATES[state]


def plan_state_from_pb(value: int, field: str) -> PlanState:
    """A known, specified PlanState or INVALID_ARGUMENT naming ``field``."""
    return enum_from_pb(plan_pb2.PlanState, "PLAN_STATE_", PlanState, value, field)


def mode_to_pb(mode: GovernanceMode) -> plan_pb2.GovernanceMode.ValueType:
    """GovernanceMode.MANUAL -> GOVERNANCE_MODE_MANUAL."""
    return _MODES[mode]


def mode_from_pb(value: int, field: str = "mode") -> GovernanceMode:
    """A known, specified GovernanceMode or INVALID_ARGUMENT naming ``field``."""
    return enum_from_pb(plan_pb2.GovernanceMode, "GOVERNANCE_MODE_", GovernanceMode, value, field)


def _step_to_pb(step: Step, out: plan_pb2.PlanStep) -> None:
    out.principal = step.principal
    out.principal_kind = _KINDS[step.kind]
    set_timestamp(out.time, step.time)
    out.comment = step.comment


# The steps a plan may have taken after its proposal (same names in both).
_LATER_STEPS = ("reviewed", "approved", "activated", "rejected", "cancelled")


def plan_to_pb(plan: Plan) -> plan_pb2.Plan:
    """The proto Plan. Fields are set one by one and times in place: built
    for every response and every event of a plan, the keyword constructor
    and a Timestamp copied in per time cost a third more."""
    out = plan_pb2.Plan()
    out.name = plan.name
    out.state = _PLAN_STATES[plan.state]
    out.reason = plan.reason
    out.version = plan.version
    out.etag = plan.etag
    # Stored as text; an unknown one raises (KeyError), never maps to 0.
    out.proposed_under_mode = _MODES_BY_TEXT[plan.proposed_under_mode]
    out.cooldown_overridden = plan.cooldown_overridden
    add = out.targets.add
    for target in plan.targets:
        add(asset=target.asset, weight_percent=target.weight_percent, hedge=target.hedge)
    _step_to_pb(plan.proposed, out.proposed)
    for name in _LATER_STEPS:
        step = getattr(plan, name)
        if step is not None:
            _step_to_pb(step, getattr(out, name))
    if plan.execute_time is not None:
        set_timestamp(out.execute_time, plan.execute_time)
    set_timestamp(out.create_time, plan.create_time)
    set_timestamp(out.update_time, plan.update_time)
    return out


def targets_from_pb(targets: list[plan_pb2.TargetWeight]) -> list[Target]:
    """Proto targets as domain targets (validated by the domain)."""
    return [Target(t.asset, t.weight_percent, t.hedge) for t in targets]


def cooldown_to_pb(status: CooldownStatus) -> governance_state_pb2.CooldownStatus:
    """The proto CooldownStatus."""
    out = governance_state_pb2.CooldownStatus(
        cooldown=duration(status.cooldown),
        last_activated_plan=status.last_activated_plan or "",
        next_allowed_time=timestamp(status.next_allowed_time),
        remaining=duration(status.remaining),
        publishing_allowed=status.publishing_allowed,
    )
    if status.last_activation_time is not None:
        out.last_activation_time.CopyFrom(timestamp(status.last_activation_time))
    return out


def freeze_type_to_pb(value: FreezeType) -> freeze_pb2.FreezeType.ValueType:
    """FreezeType.FULL_FREEZE -> FREEZE_TYPE_FULL_FREEZE."""
    return freeze_pb2.FreezeType.Value(f"FREEZE_TYPE_{value.value}")


def freeze_type_from_pb(value: int, field: str) -> FreezeType:
    """A known FreezeType or INVALID_ARGUMENT naming ``field`` (fail closed)."""
    return enum_from_pb(freeze_pb2.FreezeType, "FREEZE_TYPE_", FreezeType, value, field)


# Looked up once (every order event carries an operation): ``Value`` of a
# formatted name costs more than the rest of the conversion.
_OPERATIONS = {o: freeze_pb2.Operation.Value(f"OPERATION_{o.value}") for o in Operation}


def operation_to_pb(value: Operation) -> freeze_pb2.Operation.ValueType:
    """Operation.PURCHASE -> OPERATION_PURCHASE."""
    return _OPERATIONS[value]


def operation_from_pb(value: int, field: str = "operation") -> Operation:
    """A known Operation or INVALID_ARGUMENT naming ``field``."""
    return enum_from_pb(freeze_pb2.Operation, "OPERATION_", Operation, value, field)


def freeze_to_pb(freeze: Freeze) -> freeze_pb2.Freeze:
    """The proto Freeze."""
    out = freeze_pb2.Freeze(
        name=freeze.name,
        type=freeze_type_to_pb(freeze.type),
        reason=freeze.reason,
        actor=freeze.actor,
        create_time=timestamp(freeze.create_time),
        expire_time=timestamp(freeze.expire_time),
        ended_by=freeze.ended_by,
        end_reason=freeze.end_reason,
    )
    if freeze.end_time is not None:
        out.end_time.CopyFrom(timestamp(freeze.end_time))
    if freeze.end is not None:
        out.end = freeze_pb2.FreezeEnd.Value(f"FREEZE_END_{freeze.end.value}")
    return out


def verdict_to_pb(verdict: Verdict) -> freeze_pb2.OperationVerdict:
    """The proto OperationVerdict."""
    return freeze_pb2.OperationVerdict(
        operation=operation_to_pb(verdict.operation),
        allowed=verdict.allowed,
        blocking_freezes=[freeze_to_pb(f) for f in verdict.blocking],
        explanation=verdict.explanation,
    )


# Only the kinds the contract has (some stored events are internal).
_EVENT_KINDS = {
    k: events_pb2.EventKind.Value(f"EVENT_KIND_{k.value}")
    for k in EventKind
    if f"EVENT_KIND_{k.value}" in events_pb2.EventKind.DESCRIPTOR.values_by_name
}


def event_kind_to_pb(kind: EventKind) -> events_pb2.EventKind.ValueType:
    """EventKind.PLAN_PROPOSED -> EVENT_KIND_PLAN_PROPOSED; ValueError for
    a kind the contract does not have."""
    found = _EVENT_KINDS.get(kind)
    return found if found is not None else events_pb2.EventKind.Value(f"EVENT_KIND_{kind.value}")


def event_kind_from_pb(value: int, field: str) -> EventKind:
    """A known, specified EventKind or INVALID_ARGUMENT naming ``field``."""
    return enum_from_pb(events_pb2.EventKind, "EVENT_KIND_", EventKind, value, field)


def signals_from_pb(message: signals_pb2.SignalSet, field: str = "signals") -> SignalSet:
    """A domain SignalSet; missing optional values stay missing."""
    if not message.HasField("as_of"):
        raise invalid_field(f"{field}.as_of", "required")
    volatility: dict[str, float] = {}
    for i, item in enumerate(message.volatility):
        if item.asset in volatility:
            raise invalid_field(f"{field}.volatility[{i}].asset", f"{item.asset} repeats")
        volatility[item.asset] = item.volatility
    regime = None
    if message.HasField("regime"):
        regime = Regime(message.regime.bull, message.regime.neutral, message.regime.bear)
    phase_inputs = {
        name: getattr(message.phase_inputs, name)
        for name in PHASE_INPUTS
        if message.phase_inputs.HasField(name)  # type: ignore[arg-type]
    }
    scalars: dict[str, Any] = {
        name: getattr(message, name) if message.HasField(name) else None  # type: ignore[arg-type]
        for name in SCALARS
    }
    return SignalSet(
        as_of=message.as_of.ToDatetime(tzinfo=UTC),
        source=message.source,
        volatility=volatility,
        regime=regime,
        phase_inputs=phase_inputs,
        **scalars,
    )


def signals_to_pb(signals: SignalSet) -> signals_pb2.SignalSet:
    """The proto SignalSet."""
    out = signals_pb2.SignalSet(
        as_of=timestamp(signals.as_of),
        source=signals.source,
        publisher=signals.publisher,
        name=f"signalSets/{signals.id}" if signals.id else "",
    )
    for name in SCALARS:
        value = getattr(signals, name)
        if value is not None:
            setattr(out, name, value)
    for asset, vol in signals.volatility.items():
        out.volatility.add(asset=asset, volatility=vol)
    if signals.regime is not None:
        out.regime.bull = signals.regime.bull
        out.regime.neutral = signals.regime.neutral
        out.regime.bear = signals.regime.bear
    for name, value in signals.phase_inputs.items():
        setattr(out.phase_inputs, name, value)
    if signals.receive_time is not None:
        out.receive_time.CopyFrom(timestamp(signals.receive_time))
    return out


def policy_to_pb(policy: Policy) -> policy_pb2.ExecutionPolicy:
    """The proto ExecutionPolicy (fractions become percents)."""
    return policy_pb2.ExecutionPolicy(
        mode=policy_pb2.PolicyMode.Value(f"POLICY_MODE_{policy.mode.name}"),
        cap_daily_percent=round(policy.cap_daily * 100, 8),
        ramp_hours=policy.ramp_hours,
        min_trade_usd=decimal(policy.min_trade_usd),
        slippage_limit_bps=policy.slippage_limit_bps,
        no_trade_threshold_percent=round(policy.no_trade_threshold * 100, 8),
        estimated_cost_bps=policy.estimated_cost_bps,
        explanation=list(policy.explanation),
        derive_time=timestamp(policy.derive_time),
    )


def freshness_to_pb(freshness: Freshness) -> signals_pb2.SignalFreshness.ValueType:
    """Freshness.FRESH -> SIGNAL_FRESHNESS_FRESH."""
    return signals_pb2.SignalFreshness.Value(f"SIGNAL_FRESHNESS_{freshness.value}")


def _phase_pb(phase: Phase | None) -> signals_pb2.Phase.ValueType:
    return (
        signals_pb2.PHASE_UNSPECIFIED
        if phase is None
        else signals_pb2.Phase.Value(f"PHASE_{phase.name}")
    )


def phase_to_pb(state: PhaseState) -> signals_pb2.PhaseState:
    """The proto PhaseState."""
    out = signals_pb2.PhaseState(current=_phase_pb(state.current), leader_streak=state.streak)
    if state.since is not None:
        out.since_time.CopyFrom(timestamp(state.since))
    reading = state.reading
    if reading is not None:
        out.leader = _phase_pb(reading.leader)
        out.confidence = reading.confidence
        out.quality = reading.quality
        out.likely_next = _phase_pb(reading.likely_next)
        for phase, probability in sorted(reading.probabilities.items()):
            out.probabilities.add(phase=_phase_pb(phase), probability=probability)
    return out
