"""What the engine did, told once per committed change: every order update
and every execution change of this replica gets one log line (with account,
order, state and the fill as fields) and is counted, after its transaction
committed, so a line never reports a change that was rolled back."""

from __future__ import annotations

import logging

from govex_server.domain.events import ExecutionUpdate, OrderUpdate
from govex_server.observability.metrics import Metrics
from govex_server.store.repositories import StoredEvent

log = logging.getLogger("govex.activity")


class Activity:
    """Listens to the store's committed events (``Store.on_events``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def committed(self, events: list[StoredEvent]) -> None:
        for stored in events:
            change = stored.change
            if change is None:
                continue
            payload = change.payload
            if isinstance(payload, OrderUpdate):
                self._order(payload)
            elif isinstance(payload, ExecutionUpdate):
                self._execution(payload)

    def _order(self, update: OrderUpdate) -> None:
        order = update.order
        self._metrics.order_updates.labels(update.account, order.state.value).inc()
        log.info(
            "order %s %s",
            order.name,
            order.state.value,
            extra={
                "fields": {
                    "resource": order.name,
                    "account": update.account,
                    "state": order.state.value,
                    "symbol": order.symbol,
                    "side": order.side,
                    "quantity": str(order.quantity),
                    "price": str(order.price),
                    "filled": str(order.filled),
                    "attempt": order.attempt,
                    "reason": order.state_reason,
                }
            },
        )

    def _execution(self, update: ExecutionUpdate) -> None:
        execution = update.execution
        log.info(
            "execution %s %s: %s",
            execution.name,
            update.change.name.lower(),
            execution.state.value,
            extra={
                "fields": {
                    "resource": execution.name,
                    "account": execution.exchange,
                    "state": execution.state.value,
                    "change": update.change.name,
                    "reason": execution.state_reason,
                }
            },
        )
