"""Domain <-> proto translation for the execution API."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from govex.execution.v1 import exchange_pb2, execution_pb2
from govex.execution.v1 import execution_service_pb2 as pb
from govex_server.api.convert import (
    decimal,
    operation_to_pb,
    policy_to_pb,
    set_timestamp,
    timestamp,
    verdict_to_pb,
)
from govex_server.domain import money
from govex_server.domain.errors import invalid_field
from govex_server.domain.events import ExecutionUpdate
from govex_server.domain.execution.legs import Leg, Side
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Tallied,
)
from govex_server.domain.execution.safety import Level
from govex_server.domain.execution.safety import Verdict as SafetyVerdict
from govex_server.domain.execution.schedule import Slice
from govex_server.domain.freezes import Operation
from govex_server.exchanges.base import Exchange
from govex_server.exchanges.rate_limit import Budget
from govex_server.services.exchange_views import ExchangeDetails
from govex_server.services.planning import PlannedOrder, PlanValidation

# The enums' numbers by domain value, looked up once: ``Value`` of a
# formatted name, four of them an order, was a fifth of encoding an order
# event (every order change stores one, in the SQLite writer).
_SIDES = {s: execution_pb2.OrderSide.Value(f"ORDER_SIDE_{s.value}") for s in Side}
_ORDER_STATES = {s: execution_pb2.OrderState.Value(f"ORDER_STATE_{s.value}") for s in OrderState}
_EXECUTION_STATES = {
    s: execution_pb2.ExecutionState.Value(f"EXECUTION_STATE_{s.value}") for s in ExecutionState
}


def side_to_pb(side: Side) -> execution_pb2.OrderSide.ValueType:
    """Side.BUY -> ORDER_SIDE_BUY."""
    return _SIDES[side]


def level_from_pb(value: int, field: str = "safety_level") -> Level | None:
    """None (the configured level) for UNSPECIFIED; INVALID_ARGUMENT if unknown."""
    if value == execution_pb2.SAFETY_LEVEL_UNSPECIFIED:
        return None
    if value not in execution_pb2.SafetyLevel.values():
        raise invalid_field(field, f"{value} is not STRICT, MODERATE or PERMISSIVE")
    name = execution_pb2.SafetyLevel.Name(value)  # type: ignore[arg-type]
    return Level(name.removeprefix("SAFETY_LEVEL_"))


def safety_to_pb(verdict: SafetyVerdict) -> execution_pb2.SafetyVerdict:
    """The proto SafetyVerdict."""
    out = execution_pb2.SafetyVerdict(
        passed=verdict.passed,
        score=verdict.score,
        level=execution_pb2.SafetyLevel.Value(f"SAFETY_LEVEL_{verdict.level.value}"),
    )
    for issue in verdict.issues:
        out.issues.add(
            rule=issue.rule,
            severity=execution_pb2.SafetySeverity.Value(f"SAFETY_SEVERITY_{issue.severity.value}"),
            message=issue.message,
        )
    return out


def leg_to_pb(leg: Leg, slice_count: int) -> execution_pb2.Leg:
    """The proto Leg."""
    return execution_pb2.Leg(
        index=leg.index,
        symbol=leg.symbol,
        asset=leg.asset,
        side=side_to_pb(leg.side),
        operation=operation_to_pb(leg.operation),
        current_percent=leg.current_percent,
        target_percent=leg.target_percent,
        notional=decimal(leg.notional),
        quantity=decimal(leg.quantity),
        skipped=leg.skipped,
        skip_reason=leg.skip_reason,
        slice_count=slice_count,
    )


def order_to_pb(order: PlannedOrder) -> pb.PlannedOrder:
    """The proto PlannedOrder."""
    return pb.PlannedOrder(
        leg_index=order.leg_index,
        slice_index=order.slice_index,
        symbol=order.symbol,
        side=side_to_pb(order.side),
        quantity=decimal(order.quantity),
        price=decimal(order.price),
        notional=decimal(order.notional),
        safety=safety_to_pb(order.safety),
    )


def slice_to_pb(s: Slice) -> execution_pb2.ScheduledSlice:
    """The proto ScheduledSlice."""
    return execution_pb2.ScheduledSlice(
        leg_index=s.leg_index,
        slice_index=s.slice_index,
        scheduled_time=timestamp(s.scheduled_time),
        notional=decimal(s.notional),
        day=s.day,
    )


def validation_to_pb(v: PlanValidation) -> pb.ValidatePlanResponse:
    """The proto ValidatePlanResponse."""
    counts: dict[int, int] = {}
    for s in v.schedule:
        counts[s.leg_index] = counts.get(s.leg_index, 0) + 1
    return pb.ValidatePlanResponse(
        executable=v.executable,
        blocking_reasons=v.blocking_reasons,
        legs=[leg_to_pb(leg, counts.get(leg.index, 0)) for leg in v.legs.legs],
        freeze_verdicts=[verdict_to_pb(fv) for fv in v.freeze_verdicts],
        policy=policy_to_pb(v.policy),
        orders=[order_to_pb(o) for o in v.orders],
        schedule=[slice_to_pb(s) for s in v.schedule],
        days=v.days,
    )


def exchange_to_pb(exchange: Exchange, budget: Budget | None) -> exchange_pb2.Exchange:
    """The proto Exchange (credentials are never returned)."""
    kind = (
        exchange_pb2.EXCHANGE_KIND_PAPER
        if exchange.kind == "paper"
        else exchange_pb2.EXCHANGE_KIND_CCXT
    )
    # The paper account is always there; a ccxt account is as its last call
    # found it (unknown until the first one).
    reachable: bool | None = getattr(exchange, "reachable", True)
    health = {
        True: exchange_pb2.EXCHANGE_HEALTH_HEALTHY,
        False: exchange_pb2.EXCHANGE_HEALTH_UNAVAILABLE,
        None: exchange_pb2.EXCHANGE_HEALTH_UNSPECIFIED,
    }[reachable]
    out = exchange_pb2.Exchange(
        name=f"exchanges/{exchange.account}",
        kind=kind,
        ccxt_id=getattr(exchange, "ccxt_id", ""),
        sandbox=exchange.sandbox,
        connected=reachable is not False,
        health=health,
        has_credentials=exchange.kind != "paper",
        quote_currency=exchange.quote,
    )
    # The paper account is configured at start-up only: no update time.
    configured = getattr(exchange, "update_time", None)
    if configured is not None:
        out.update_time.CopyFrom(timestamp(configured))
    if budget is not None:
        out.rate_budget.max_orders = budget.max_orders
        out.rate_budget.window.FromTimedelta(budget.window)
        out.rate_budget.remaining = budget.remaining
        if budget.blocked_until is not None:
            out.rate_budget.blocked_until.CopyFrom(timestamp(budget.blocked_until))
    return out


def details_to_pb(details: ExchangeDetails, budget: Budget | None) -> pb.GetExchangeResponse:
    """The proto GetExchangeResponse: the account, its balances by asset and
    its markets by symbol."""
    out = pb.GetExchangeResponse(exchange=exchange_to_pb(details.exchange, budget))
    for asset, balance in sorted(details.balances.items()):
        out.balances.add(asset=asset, free=decimal(balance.free), total=decimal(balance.total))
    for symbol, market in sorted(details.markets.items()):
        out.markets.add(
            symbol=symbol,
            amount_step=decimal(market.amount_step),
            price_step=decimal(market.price_step),
            min_notional=decimal(market.min_notional),
            min_amount=decimal(market.min_amount),
        )
    return out


def order_state_to_pb(state: OrderState) -> execution_pb2.OrderState.ValueType:
    """OrderState.FILLED -> ORDER_STATE_FILLED."""
    return _ORDER_STATES[state]


def execution_state_to_pb(state: ExecutionState) -> execution_pb2.ExecutionState.ValueType:
    """ExecutionState.RUNNING -> EXECUTION_STATE_RUNNING."""
    return _EXECUTION_STATES[state]


def order_record_to_pb(o: OrderRecord) -> execution_pb2.Order:
    """The proto Order."""
    out = execution_pb2.Order()
    _fill_order(out, o)
    return out


def _fill_order(out: execution_pb2.Order, o: OrderRecord) -> None:
    """Sets an empty Order message, in place: an order event fills its own
    ``order`` field (building an Order and passing it to OrderEvent copied
    it whole, a third of the event's encoding)."""
    out.name = o.name
    out.client_order_id = o.client_order_id
    out.exchange_order_id = o.exchange_order_id
    out.symbol = o.symbol
    out.side = side_to_pb(Side(o.side))
    out.type = execution_pb2.ORDER_TYPE_LIMIT
    out.quantity.value = money.text(o.quantity)
    out.price.value = money.text(o.price)
    out.filled_quantity.value = money.text(o.filled)
    out.average_price.value = money.text(o.average_price)
    out.fee.value = money.text(o.fee)
    out.state = _ORDER_STATES[o.state]
    out.state_reason = o.state_reason
    out.leg_index = o.leg_index
    out.slice_index = o.slice_index
    out.attempt = o.attempt
    set_timestamp(out.create_time, o.create_time)
    set_timestamp(out.update_time, o.update_time)
    out.operation = operation_to_pb(Operation(o.operation))
    if o.safety:
        out.safety.CopyFrom(safety_json_to_pb(o.safety))


def safety_json_to_pb(data: dict[str, Any]) -> execution_pb2.SafetyVerdict:
    """A stored safety verdict (JSON) as proto."""
    out = execution_pb2.SafetyVerdict(
        passed=bool(data.get("passed")),
        score=int(data.get("score", 0)),
        level=execution_pb2.SafetyLevel.Value(f"SAFETY_LEVEL_{data.get('level', 'MODERATE')}"),
    )
    for issue in data.get("issues", []):
        out.issues.add(
            rule=issue["rule"],
            severity=execution_pb2.SafetySeverity.Value(f"SAFETY_SEVERITY_{issue['severity']}"),
            message=issue["message"],
        )
    return out


def execution_record_to_pb(
    e: ExecutionRecord, orders: Sequence[Tallied]
) -> execution_pb2.Execution:
    """The proto Execution, with its order counts."""
    out = execution_pb2.Execution(
        name=e.name,
        plan=f"plans/{e.plan_id}",
        exchange=f"exchanges/{e.exchange}",
        state=execution_state_to_pb(e.state),
        strategy=execution_pb2.ExecutionStrategy.Value(f"EXECUTION_STRATEGY_{e.strategy.value}"),
        max_parallel=e.max_parallel,
        dry_run=e.dry_run,
        state_reason=e.state_reason,
        actor=e.actor,
        create_time=timestamp(e.create_time),
        portfolio_value=decimal(e.portfolio_value),
    )
    if e.end_time is not None:
        out.end_time.CopyFrom(timestamp(e.end_time))
    out.policy.CopyFrom(policy_to_pb(e.policy))
    filled_by_leg: dict[int, Decimal] = {}
    count_by_leg: dict[int, int] = {}
    by_state: dict[OrderState, int] = {}
    for o in orders:
        filled_by_leg[o.leg_index] = filled_by_leg.get(o.leg_index, money.ZERO) + money.mul(
            o.filled, o.average_price or o.price
        )
        count_by_leg[o.leg_index] = count_by_leg.get(o.leg_index, 0) + 1
        by_state[o.state] = by_state.get(o.state, 0) + 1
    for state in OrderState:
        if state in by_state:
            out.order_counts.add(state=order_state_to_pb(state), count=by_state[state])
    for leg in e.legs:
        out.legs.add(
            index=leg.index,
            symbol=leg.symbol,
            asset=leg.asset,
            side=side_to_pb(leg.side),
            operation=operation_to_pb(leg.operation),
            current_percent=leg.current_percent,
            target_percent=leg.target_percent,
            notional=decimal(leg.notional),
            quantity=decimal(leg.quantity),
            filled_notional=decimal(filled_by_leg.get(leg.index, money.ZERO)),
            skipped=leg.skipped,
            skip_reason=leg.skip_reason,
            slice_count=count_by_leg.get(leg.index, 0),
        )
    return out


def order_event_payload(o: OrderRecord, state: ExecutionState, sequence: int, when: Any) -> bytes:
    """The stored form of an order event: a serialized OrderEvent."""
    event = execution_pb2.OrderEvent(sequence=sequence, execution_state=_EXECUTION_STATES[state])
    set_timestamp(event.time, when)
    _fill_order(event.order, o)
    return event.SerializeToString()


def execution_event_payload(update: ExecutionUpdate, sequence: int, when: Any) -> bytes:
    """The stored form of an execution event: a serialized ExecutionEvent."""
    return execution_pb2.ExecutionEvent(
        sequence=sequence,
        time=timestamp(when),
        type=execution_pb2.ExecutionEventType.Value(f"EXECUTION_EVENT_TYPE_{update.change.value}"),
        execution=execution_record_to_pb(update.execution, update.orders),
    ).SerializeToString()
