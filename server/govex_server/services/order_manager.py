"""The order manager: sending an execution's due orders (priced now, inside
the day's cap, past the freezes and the safety validator), resolving sends
whose outcome is unknown, refreshing and re-pricing resting orders, and
cancelling them, all through the account's rate budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.clock import Clock
from govex_server.domain.execution.budget import day_cap, deferral
from govex_server.domain.execution.legs import Side, blocked_by
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.pricing import limit_order, step_refusal
from govex_server.domain.execution.records import ExecutionRecord, OrderRecord, Strategy
from govex_server.domain.execution.resting import RestingRule
from govex_server.domain.execution.safety import Level, Limits, Market, ProposedOrder, validate
from govex_server.exchanges.base import Balance, Exchange, ExchangeOrder
from govex_server.exchanges.errors import (
    ExchangeError,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from govex_server.exchanges.rate_limit import OrderRateLimiter
from govex_server.services.freezes import FreezeService
from govex_server.services.order_records import OrderRecorder, verdict_json
from govex_server.services.planning import ExecutionPlanner
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")

# Tries of one send refused before it reached the exchange (unavailable,
# rate limited) before the order is given up as REJECTED.
SEND_RETRIES = 5


@dataclass
class _Quotes:
    """Prices, markets and balances read once for a round of sends; what the
    round's placed orders take is reserved here, so that the balance check of
    each later order sees it."""

    prices: Mapping[str, Decimal]
    markets: Mapping[str, Market]
    balances: Mapping[str, Balance]
    # The daily cap of the policy in force at the round (a fraction).
    current_cap: float
    reserved: dict[str, Decimal] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        """What is free of ``asset`` for the next order of the round."""
        held = self.balances[asset].free if asset in self.balances else money.ZERO
        return held - self.reserved.get(asset, money.ZERO)

    def reserve(self, asset: str, amount: Decimal) -> None:
        """Takes ``amount`` of ``asset`` for an order just placed."""
        self.reserved[asset] = self.reserved.get(asset, money.ZERO) + amount


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
        self._clock = clock
        self._records = records
        self._freezes = freezes
        self._planner = planner
        self._limiters = limiters
        self._limits = limits
        self._resting = resting
        # Executions whose sends stop at once (a cancel was accepted here).
        self._stopping = stopping

    async def send_all(
        self, execution: ExecutionRecord, due: list[OrderRecord], exchange: Exchange
    ) -> None:
        sells = [o for o in due if o.side == Side.SELL.value]
        buys = [o for o in due if o.side == Side.BUY.value]
        # One price and market look-up for the round (not one per order):
        # every order of the round is priced at the same moment.
        assets = sorted({o.symbol.split("/")[0] for o in due})
        quotes = _Quotes(
            await exchange.prices(assets),
            await exchange.markets(),
            await exchange.balances(),
            (await self._planner.policy_now()).cap_daily,
        )
        if execution.strategy is Strategy.SEQUENTIAL:
            for order in [*sells, *buys]:
                if execution.id in self._stopping:
                    return
                await self.send(execution, order, exchange, quotes)
            return
        # PARALLEL: bounded concurrency, sells (which fund the buys) first.
        gate = asyncio.Semaphore(execution.max_parallel)

        async def one(order: OrderRecord) -> None:
            async with gate:
                if execution.id not in self._stopping:
                    await self.send(execution, order, exchange, quotes)

        for batch in (sells, buys):
            await asyncio.gather(*(one(o) for o in batch))

    async def send(
        self, execution: ExecutionRecord, order: OrderRecord, exchange: Exchange, quotes: _Quotes
    ) -> None:
        leg = execution.legs[order.leg_index]
        now = self._clock.now()
        # The domain's rule, as at the start: what the leg requires, against
        # the freezes active now.
        blocking = blocked_by(leg, await self._freezes.active(), now)
        if blocking:
            names = ", ".join(f"{f.name} ({f.type.value})" for f in blocking)
            await self._records.move(
                execution, order, OrderState.CANCELLED, reason=f"forbidden by {names}"
            )
            return
        # Price the order now: a slice sent days later uses that day's price.
        asset = order.symbol.split("/")[0]
        reference = quotes.prices.get(asset, order.reference_price)
        market = quotes.markets.get(order.symbol, Market(money.ZERO, money.ZERO, money.ZERO))
        slippage_bps = execution.policy.slippage_limit_bps
        quantity, price = limit_order(
            Side(order.side),
            money.mul(order.quantity, order.reference_price),
            reference,
            slippage_bps,
            market,
        )
        if why := step_refusal(reference, slippage_bps, market):
            await self._records.move(execution, order, OrderState.REJECTED, reason=why[:500])
            return
        quote = exchange.quote
        cap = day_cap(execution.portfolio_value, execution.policy.cap_daily, quotes.current_cap)
        limiter = self._limiters.get(exchange.account)
        if limiter is not None:
            await limiter.acquire()

        def decide(uow: UnitOfWork) -> OrderRecord:
            # Read and decide in the unit that records the decision: the
            # day's traded notional cannot move between the check and the
            # SUBMITTED row. The account's other orders still at the
            # exchange count too (their fills are not recorded yet): a
            # PARALLEL round checked against fills alone would let every
            # order in flight pass the daily cap and the daily limit.
            uow.daily_notional.serialize(exchange.account)
            used = uow.daily_notional.counted(exchange.account, now.date())
            twin = uow.orders.by_client_id(order.client_order_id)
            # The duplicate rule: this client order id belongs to another order.
            known = {order.client_order_id} if twin is not None and twin.id != order.id else set()
            # The schedule spreads the cap, but a late slice (a restart, a
            # backlog) or a cap lowered since the start must not push
            # today's traded notional over it.
            tomorrow = deferral(now, used, money.mul(quantity, price), cap)
            if tomorrow is not None:
                return self._records.move_in(
                    uow,
                    execution,
                    order,
                    OrderState.PENDING,
                    reason=f"deferred: today's cap of {cap:.2f} is used",
                    scheduled_time=tomorrow,
                )
            verdict = validate(
                ProposedOrder(
                    order.client_order_id,
                    order.symbol,
                    order.side,
                    quantity,
                    price,
                    reference,
                    exchange.sandbox,
                ),
                self._limits,
                market,
                used,
                quotes.free(quote),
                quotes.free(asset),
                known,
                Level(execution.safety_level),
            )
            safety = verdict_json(verdict)
            if not verdict.passed:
                rules = ", ".join(sorted({i.rule for i in verdict.issues}))
                return self._records.move_in(
                    uow,
                    execution,
                    order,
                    OrderState.REJECTED,
                    reason=f"safety: {rules}",
                    safety=safety,
                )
            return self._records.move_in(
                uow,
                execution,
                order,
                OrderState.SUBMITTED,
                quantity=quantity,
                price=price,
                reference_price=reference,
                safety=safety,
                send_time=now,
            )

        order = await self._store.write(decide)
        if order.state is not OrderState.SUBMITTED:
            # Deferred or refused before the exchange heard of it: a backlog
            # of late slices must not use up the account's order budget.
            if limiter is not None:
                limiter.release()
            return
        # What this order will take is no longer free for the round's others.
        if order.side == Side.BUY.value:
            quotes.reserve(
                quote, money.mul(money.mul(order.quantity, order.price), 1 + self._limits.fee_rate)
            )
        else:
            quotes.reserve(asset, order.quantity)
        for attempt in range(SEND_RETRIES):
            try:
                placed = await exchange.create_order(
                    order.client_order_id, order.symbol, order.side, order.quantity, order.price
                )
            except RateLimited as exc:
                # Refused before it was placed: the same id may be sent again.
                if limiter is not None:
                    limiter.retry_after(exc.retry_after)
                    await limiter.acquire()
                continue
            except ExchangeUnavailable:
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
                continue
            except OrderRejected as exc:
                await self._records.move(
                    execution, order, OrderState.REJECTED, reason=str(exc)[:500]
                )
                return
            except OutcomeUnknown as exc:
                order = await self._records.move(
                    execution, order, OrderState.UNKNOWN, reason=f"outcome unknown: {exc}"[:500]
                )
                await self.resolve(execution, order, exchange)
                return
            await self._records.apply(execution, order, placed)
            return
        await self._records.move(
            execution,
            order,
            OrderState.REJECTED,
            reason=f"not placed after {SEND_RETRIES} tries (exchange unavailable or rate limited)",
        )

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
        remaining = await self._store.read(lambda uow: uow.orders.for_execution(execution.id))
        if all(o.state.terminal for o in remaining):
            if await self._records.finish(execution, remaining, reason):
                self._stopping.pop(execution.id, None)
            return True
        if refused is not None:
            # The supervisor tries again after a growing wait, not at once
            # (a refused cancel retried in a loop hammered the exchange).
            raise refused
        # An order still unresolved (not found yet after a takeover, or its
        # lookup failed): the caller waits a poll before looking again.
        return False
