"""The order manager: sending an execution's due orders (order_sender.py),
resolving sends whose outcome is unknown, refreshing and re-pricing resting
orders, and cancelling them, all through the account's rate budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from govex_server.domain.clock import Clock
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionRecord, OrderRecord
from govex_server.domain.execution.resting import RestingRule
from govex_server.domain.execution.safety import Limits
from govex_server.exchanges.base import Exchange, ExchangeOrder
from govex_server.exchanges.errors import (
    ExchangeError,
    OrderNotFound,
)
from govex_server.exchanges.rate_limit import OrderRateLimiter
from govex_server.services.freezes import FreezeService
from govex_server.services.order_records import OrderRecorder
from govex_server.services.order_sender import OrderSender
from govex_server.services.planning import ExecutionPlanner
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")


class OrderManager:
    """Sends, resolves, refreshes, re-prices and cancels one execution's
    orders on its exchange, each decision taken by a domain rule."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        records: OrderRecorder,
        freezes: FreezeService,
        planner: ExecutionPlanner,
        limiters: dict[str, OrderRateLimiter],
        limits: Limits,
        resting: RestingRule,
        stopping: dict[str, str],
    ) -> None:
        self._store = store
        self._records = records
        self._limiters = limiters
        self._resting = resting
        # Executions whose sends stop at once (a cancel was accepted here).
        self._stopping = stopping
        self._sender = OrderSender(
            store, clock, records, freezes, planner, limiters, limits, stopping, self.resolve
        )

    async def send_all(
        self, execution: ExecutionRecord, due: list[OrderRecord], exchange: Exchange
    ) -> None:
        """Sends a round of due orders (order_sender.py)."""
        await self._sender.send_all(execution, due, exchange)

    async def resolve(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange
    ) -> None:
        """Finds out what became of a send: by client order id, never by
        resending it under a new id without knowing."""
        try:
            found = await exchange.fetch_order(order.client_order_id, order.symbol)
        except OrderNotFound:
            until = self._records.leases.in_flight_until(execution.id, exchange.accept_window)
            if until is not None:
                # Taken over from another replica: its send may still be on
                # its way; the exchange refuses it past its receive window,
                # and only then is "not found" the truth. Looked up again.
                log.info(
                    "execution %s: %s not found yet; the previous owner's request may arrive "
                    "for %.1fs more",
                    execution.id,
                    order.client_order_id,
                    until - self._records.leases.monotonic(),
                )
                return
            # The exchange never got it: a new attempt (a new id) is safe.
            await self._records.move(
                execution,
                order,
                OrderState.REJECTED,
                reason="not found at the exchange after an unknown outcome; retried",
                retry=True,
            )
            return
        except ExchangeError as exc:
            log.warning(
                "execution %s: %s still unresolved: %s", execution.id, order.client_order_id, exc
            )
            return
        await self._records.apply(execution, order, found)

    async def refresh_all(
        self, execution: ExecutionRecord, resting: Sequence[OrderRecord], exchange: Exchange
    ) -> list[OrderRecord]:
        """One poll of the resting orders: looked up together (bounded by the
        execution's concurrency), and every fill of the poll recorded with
        its events in one unit of work. The orders still resting after it."""
        gate = asyncio.Semaphore(execution.max_parallel)

        async def look_up(order: OrderRecord) -> tuple[OrderRecord, ExchangeOrder | None]:
            async with gate:
                try:
                    return order, await exchange.fetch_order(order.client_order_id, order.symbol)
                except ExchangeError:
                    return order, None

        found = await asyncio.gather(*(look_up(o) for o in resting))
        changed = [
            (order, now)
            for order, now in found
            if now is not None and (now.status != "open" or now.filled != order.filled)
        ]
        updated: dict[str, OrderRecord] = {}
        if changed:
            moved = await self._store.write(
                lambda uow: [self._records.apply_in(uow, execution, o, f) for o, f in changed]
            )
            updated = {o.id: o for o in moved}
        latest = [updated.get(o.id, o) for o in resting]
        return [o for o in latest if o.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)]

    async def reprice_all(
        self, execution: ExecutionRecord, stale: Sequence[OrderRecord], exchange: Exchange
    ) -> None:
        """Cancels orders that rested past the TTL and sends what is left of
        each as its next attempt; a cancel the exchange refuses stops the
        runner for the supervisor's backoff (the order stays as it is)."""
        for order in stale:
            await self.reprice(execution, order, exchange)

    async def reprice(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange
    ) -> None:
        limiter = self._limiters.get(exchange.account)
        if limiter is not None:
            await limiter.acquire()
        ended = await exchange.cancel_order(order.client_order_id, order.symbol)
        left = order.quantity - ended.filled
        attempt = self._resting.next_attempt(order.attempt, left)
        reason = (
            f"rested {self._resting.ttl.total_seconds():g}s unfilled: cancelled, "
            f"re-sent as attempt {attempt}"
            if attempt is not None
            else self._resting.exhausted(order.attempt)
        )

        def unit(uow: UnitOfWork) -> None:
            moved = self._records.apply_in(uow, execution, order, ended, reason)
            # A fill that won the race leaves nothing to send again.
            if moved.state is OrderState.CANCELLED and attempt is not None:
                self._records.again(uow, execution, moved, attempt, left, reason)

        await self._store.write(unit)
        log.info("execution %s: %s %s", execution.id, order.client_order_id, reason)

    async def refresh(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange
    ) -> None:
        try:
            found = await exchange.fetch_order(order.client_order_id, order.symbol)
        except ExchangeError:
            return
        if found.status != "open" or found.filled != order.filled:
            await self._records.apply(execution, order, found)

    async def stop(
        self,
        execution: ExecutionRecord,
        orders: Sequence[OrderRecord],
        exchange: Exchange,
        reason: str,
    ) -> bool:
        """Cancels what rests, drops what is unsent, resolves what is in
        doubt; True once every order is final (the execution has ended)."""
        refused: ExchangeError | None = None
        limiter = self._limiters.get(exchange.account)
        for order in orders:
            if order.state is OrderState.PENDING:
                await self._records.move(execution, order, OrderState.CANCELLED, reason=reason)
            elif order.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED):
                # A cancel is a call like a send: inside the account's budget.
                if limiter is not None:
                    await limiter.acquire()
                try:
                    ended = await exchange.cancel_order(order.client_order_id, order.symbol)
                except ExchangeError as exc:
                    log.warning("cancel of %s failed: %s", order.client_order_id, exc)
                    refused = exc
                    continue
                await self._records.apply(execution, order, ended, reason)
            elif order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN):
                await self.resolve(execution, order, exchange)
        remaining = await self._store.read(lambda uow: uow.orders.live_for_execution(execution.id))
        if not remaining:
            if await self._records.finish(execution, reason):
                self._stopping.pop(execution.id, None)
            return True
        if refused is not None:
            # The supervisor tries again after a growing wait, not at once
            # (a refused cancel retried in a loop hammered the exchange).
            raise refused
        # An order still unresolved (not found yet after a takeover, or its
        # lookup failed): the caller waits a poll before looking again.
        return False
