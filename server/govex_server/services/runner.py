"""The runner of one execution: a loop over its orders that sends what is
due, follows what rests, and ends the execution when every order is final."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from govex_server.domain.clock import Clock
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionRecord, ExecutionState, OrderRecord
from govex_server.domain.execution.resting import RestingRule
from govex_server.exchanges.base import ExchangeRegistry
from govex_server.services.execution_views import ExecutionQueries, cancel_reason
from govex_server.services.fenced_exchange import FencedExchange
from govex_server.services.order_manager import OrderManager
from govex_server.services.order_records import OrderRecorder

log = logging.getLogger("govex.engine")


POLL_OPEN_SECONDS = 0.5


@dataclass
class RunnerSignals:
    """What the engine's parts tell the runners: wake up (a fill, a freeze,
    a cancel), and stop sending at once (the execution is being cancelled)."""

    wake: dict[str, asyncio.Event] = field(default_factory=dict)
    stopping: dict[str, str] = field(default_factory=dict)


class Runner:
    """One execution's loop: resolve, refresh, re-price, send what is due,
    wait; stop when it is CANCELLING; end when every order is final."""

    def __init__(
        self,
        clock: Clock,
        queries: ExecutionQueries,
        orders: OrderManager,
        records: OrderRecorder,
        exchanges: ExchangeRegistry,
        resting: RestingRule,
        signals: RunnerSignals,
    ) -> None:
        self._clock = clock
        self._queries = queries
        self._orders = orders
        self._records = records
        self._exchanges = exchanges
        self._resting = resting
        self._signals = signals

    async def run(self, execution_id: str) -> None:
        wake = self._signals.wake.setdefault(execution_id, asyncio.Event())
        while True:
            wake.clear()
            # Only the live orders: a turn acts on nothing else, and the end
            # counts the final ones itself (a 1,000-order execution's last
            # turn read every row whole, some 20 ms, to find none live).
            view = await self._queries.live(execution_id)
            execution, orders = view.execution, view.orders
            if execution.state.terminal:
                return
            exchange = FencedExchange(
                self._exchanges.get(f"exchanges/{execution.exchange}"),
                self._records.leases,
                execution_id,
            )
            if execution.state is ExecutionState.CANCELLING:
                # The stored state is the truth (it survives a restart); the
                # flag only stops a send round of this server at once.
                self._signals.stopping[execution_id] = execution.state_reason
                if not await self._orders.stop(
                    execution, orders, exchange, cancel_reason(execution)
                ):
                    await self._wait(execution, orders, wake)
                continue
            if not orders:
                if await self._records.finish(execution):
                    self._signals.stopping.pop(execution_id, None)
                    return
                # Not ended: it has a live order again (a stray adopted
                # meanwhile), or it had ended already: look again.
                continue
            for order in orders:
                if order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN):
                    await self._orders.resolve(execution, order, exchange)
            resting = [
                o for o in orders if o.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)
            ]
            if resting:
                resting = await self._orders.refresh_all(execution, resting, exchange)
            now = self._clock.now()
            stale = [o for o in resting if self._resting.stale(o.send_time, now)]
            if stale:
                await self._orders.reprice_all(execution, stale, exchange)
                continue
            due = [o for o in orders if o.state is OrderState.PENDING and o.scheduled_time <= now]
            if due:
                await self._orders.send_all(execution, due, exchange)
                continue
            await self._wait(execution, orders, wake)

    async def _wait(
        self, execution: ExecutionRecord, orders: Sequence[OrderRecord], wake: asyncio.Event
    ) -> None:
        pending = [o.scheduled_time for o in orders if o.state is OrderState.PENDING]
        open_orders = any(
            not o.state.terminal and o.state is not OrderState.PENDING for o in orders
        )
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(wake.wait())]
        if pending:
            waiters.append(asyncio.ensure_future(self._clock.sleep_until(min(pending))))
        if open_orders:
            waiters.append(asyncio.ensure_future(asyncio.sleep(POLL_OPEN_SECONDS)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
