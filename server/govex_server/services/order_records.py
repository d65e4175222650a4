"""Recording orders and executions: every change in one transaction with
its event, the order state machine enforced, fills that only grow."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.clock import Clock
from govex_server.domain.errors import GovexError
from govex_server.domain.events import (
    DomainEvent,
    EventKind,
    ExecutionChange,
    ExecutionUpdate,
    OrderUpdate,
)
from govex_server.domain.execution.orders import OrderState, client_order_id, next_fill, state_of
from govex_server.domain.execution.orders import move as move_state
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Tallied,
    outcome,
)
from govex_server.domain.execution.safety import Verdict
from govex_server.domain.ids import UlidFactory
from govex_server.domain.principals import Principal, PrincipalKind
from govex_server.exchanges.base import ExchangeOrder
from govex_server.services.governance import GovernanceService
from govex_server.services.leases import Leases
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")


class OrderRecorder:
    """Writes what happens to orders and executions: each change with its
    event (and the traded notional) in one transaction, the state machine
    enforced."""

    def __init__(
        self, store: Store, clock: Clock, governance: GovernanceService, leases: Leases
    ) -> None:
        self._store = store
        self._clock = clock
        self._governance = governance
        # Every write below is fenced: a runner whose lease was taken over
        # cannot change its orders.
        self.leases = leases
        self._ids = UlidFactory()

    async def apply(
        self, execution: ExecutionRecord, order: OrderRecord, found: ExchangeOrder, reason: str = ""
    ) -> OrderRecord:
        return await self._store.write(
            lambda uow: self.apply_in(uow, execution, order, found, reason)
        )

    def apply_in(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        order: OrderRecord,
        found: ExchangeOrder,
        reason: str = "",
    ) -> OrderRecord:
        """Records what the exchange says of ``order``, in the caller's unit.
        A report whose fill went back or exceeds the order's quantity is not
        recorded (an error line says so): the order keeps what was known, and
        the next lookup may bring a sane report."""
        state = state_of(found.status, found.filled)
        if state is order.state and found.filled == order.filled:
            return order
        try:
            next_fill(order.name, order.filled, found.filled, order.quantity)
        except GovexError as exc:
            log.error("exchange report for %s ignored: %s", order.name, exc.message)
            return order
        traded = money.notional(
            money.mul(
                max(money.ZERO, found.filled - order.filled), found.average_price or order.price
            )
        )
        return self.move_in(
            uow,
            execution,
            order,
            state,
            reason=reason or found.status,
            filled=found.filled,
            average_price=found.average_price,
            fee=found.fee,
            exchange_order_id=found.exchange_id,
            traded=traded,
        )

    async def move(
        self,
        execution: ExecutionRecord,
        order: OrderRecord,
        state: OrderState,
        *,
        reason: str = "",
        traded: Decimal = money.ZERO,
        retry: bool = False,
        **changes: object,
    ) -> OrderRecord:
        """One order change, its event (and the retry order) in one transaction.
        The state machine is enforced; PENDING -> PENDING is a reschedule."""
        return await self._store.write(
            lambda uow: self.move_in(
                uow, execution, order, state, reason=reason, traded=traded, retry=retry, **changes
            )
        )

    def move_in(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        order: OrderRecord,
        state: OrderState,
        *,
        reason: str = "",
        traded: Decimal = money.ZERO,
        retry: bool = False,
        **changes: object,
    ) -> OrderRecord:
        """``_move`` inside the caller's unit of work."""
        self.leases.fence_in(uow, execution.id)
        if state is not order.state or state is not OrderState.PENDING:
            move_state(order.name, order.state, state)
        now = self._clock.now()
        moved = order.changed(
            state=state, state_reason=reason or order.state_reason, update_time=now, **changes
        )
        if not uow.orders.replace(moved, order.state, order):
            latest = uow.orders.get(order.id)
            return latest or order
        self.order_event(uow, moved, execution)
        if traded > 0:
            uow.daily_notional.add(execution.exchange, now.date(), traded)
        if retry:
            self.again(
                uow, execution, order, order.attempt + 1, order.quantity, "retry after a lost send"
            )
        return moved

    def again(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        order: OrderRecord,
        attempt: int,
        quantity: Decimal,
        reason: str,
    ) -> None:
        """The slice of ``order`` sent again as ``attempt`` (a new client
        order id), due now and priced when it is sent."""
        self.leases.fence_in(uow, execution.id)
        now = self._clock.now()
        again = replace(
            order,
            id=self._ids.new(now),
            attempt=attempt,
            client_order_id=client_order_id(
                execution.id, order.leg_index, order.slice_index, attempt
            ),
            quantity=quantity,
            state=OrderState.PENDING,
            state_reason=reason,
            scheduled_time=now,
            create_time=now,
            update_time=now,
            send_time=None,
            exchange_order_id="",
            filled=money.ZERO,
            average_price=money.ZERO,
            fee=money.ZERO,
            safety={},
        )
        uow.orders.add(again)
        self.order_event(uow, again, execution)

    def execution_event(
        self,
        uow: UnitOfWork,
        execution: ExecutionRecord,
        orders: Sequence[Tallied],
        change: ExecutionChange,
    ) -> None:
        uow.events.append(
            DomainEvent(
                EventKind.EXECUTION_UPDATED,
                self._clock.now(),
                "",
                execution.name,
                ExecutionUpdate(execution, tuple(orders), change),
            )
        )

    def order_event(self, uow: UnitOfWork, order: OrderRecord, execution: ExecutionRecord) -> None:
        uow.events.append(
            DomainEvent(
                EventKind.ORDER_UPDATED,
                self._clock.now(),
                "",
                order.name,
                OrderUpdate(order, execution.state, execution.exchange),
            )
        )

    async def finish(self, execution: ExecutionRecord, cancelled_by: str = "") -> bool:
        """Ends the execution as its orders say, once none of them is live;
        False when it had ended or still has a live order. The orders are
        counted in the unit that ends it, from their tallies."""
        now = self._clock.now()
        ending: list[tuple[ExecutionState, str]] = []

        def unit(uow: UnitOfWork) -> bool:
            self.leases.fence_in(uow, execution.id)
            current = uow.executions.get(execution.id)
            if current is None or current.state.terminal:
                return False
            orders = uow.orders.tallies(execution.id)
            if not all(o.state.terminal for o in orders):
                return False
            state, reason = outcome(orders, cancelled_by)
            ending.append((state, reason))
            ended = replace(
                current, state=state, state_reason=reason, end_time=now, version=current.version + 1
            )
            if not uow.executions.replace(ended, current.version):
                return False
            if state is ExecutionState.SUCCEEDED:
                actor = Principal(current.actor, PrincipalKind(current.actor_kind), frozenset())
                self._governance.complete_in(uow, current.plan_id, current.name, actor)
            self.execution_event(uow, ended, orders, ExecutionChange.ENDED)
            return True

        if not await self._store.write(unit):
            return False
        state, reason = ending[-1]
        log.info("execution %s ended %s: %s", execution.id, state.value, reason)
        return True


def verdict_json(verdict: Verdict) -> dict[str, object]:
    return {
        "passed": verdict.passed,
        "score": verdict.score,
        "level": verdict.level.value,
        "issues": [
            {"rule": i.rule, "severity": i.severity.value, "message": i.message}
            for i in verdict.issues
        ],
    }
