"""Sending a round of due orders: each priced now, decided against the
freezes, the day's cap and the safety validator in the unit that records it
SUBMITTED (durable before the exchange hears of it), then placed, and what
the exchange answered recorded.

PARALLEL keeps at most max_parallel orders at the exchange at once, and
keeps each order's two durable writes out of that slot: up to max_parallel
more orders are decided while the slots' orders are at the exchange, and an
answer is recorded after its slot is free again. With the writes inside the
slot every slot waited for two commits per order beside the exchange's
latency (a 20 ms exchange ran 1.7x slower than its ideal for that alone).

A decided order that waited for its slot is checked once more, just before
it is sent, against the freezes and a cancel: what was decided before a
Freeze or a CancelExecution is not sent after it (it is CANCELLED, and the
exchange never hears of it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.clock import Clock
from govex_server.domain.execution.budget import day_cap, deferral
from govex_server.domain.execution.legs import Side, blocked_by
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.pricing import limit_order, step_refusal
from govex_server.domain.execution.records import ExecutionRecord, OrderRecord, Strategy
from govex_server.domain.execution.safety import Level, Limits, Market, ProposedOrder, validate
from govex_server.exchanges.base import Exchange, ExchangeOrder
from govex_server.exchanges.errors import (
    ExchangeUnavailable,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from govex_server.exchanges.rate_limit import OrderRateLimiter
from govex_server.services.execution_views import cancel_reason
from govex_server.services.freezes import FreezeService
from govex_server.services.order_records import OrderRecorder, verdict_json
from govex_server.services.planning import ExecutionPlanner
from govex_server.services.send_round import Quotes, Slots
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")

# Tries of one send refused before it reached the exchange (unavailable,
# rate limited) before the order is given up as REJECTED.
SEND_RETRIES = 5

# What an order's send came to: the exchange's order, its refusal, an
# unknown outcome, or None (never placed after SEND_RETRIES tries).
Sent = ExchangeOrder | OrderRejected | OutcomeUnknown | None
# How the reason of an order withdrawn before its send ends.
_WITHDRAWN = "withdrawn before it was sent"
Resolve = Callable[[ExecutionRecord, OrderRecord, Exchange], Awaitable[None]]


class OrderSender:
    """Sends a round of one execution's due orders."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        records: OrderRecorder,
        freezes: FreezeService,
        planner: ExecutionPlanner,
        limiters: dict[str, OrderRateLimiter],
        limits: Limits,
        stopping: dict[str, str],
        resolve: Resolve,
    ) -> None:
        self._store = store
        self._clock = clock
        self._records = records
        self._freezes = freezes
        self._planner = planner
        self._limiters = limiters
        self._limits = limits
        # Executions whose sends stop at once (a cancel was accepted here).
        self._stopping = stopping
        # Finds out what became of a send whose outcome is unknown.
        self._resolve = resolve

    async def send_all(
        self, execution: ExecutionRecord, due: list[OrderRecord], exchange: Exchange
    ) -> None:
        sells = [o for o in due if o.side == Side.SELL.value]
        buys = [o for o in due if o.side == Side.BUY.value]
        # One price and market look-up for the round (not one per order):
        # every order of the round is priced at the same moment.
        assets = sorted({o.symbol.split("/")[0] for o in due})
        quotes = Quotes(
            await exchange.prices(assets),
            await exchange.markets(),
            await exchange.balances(),
            (await self._planner.policy_now()).cap_daily,
        )
        if execution.strategy is Strategy.SEQUENTIAL:
            # One at a time, each recorded before the next is decided.
            slots = Slots(1, self._store)
            for order in [*sells, *buys]:
                if execution.id in self._stopping:
                    return
                await slots.ahead.acquire()
                await self.send(execution, order, exchange, quotes, slots)
            return
        # PARALLEL: bounded concurrency, sells (which fund the buys) first.
        slots = Slots(execution.max_parallel, self._store)
        for batch in (sells, buys):
            await self._spawn(execution, batch, exchange, quotes, slots)

    async def _spawn(
        self,
        execution: ExecutionRecord,
        batch: list[OrderRecord],
        exchange: Exchange,
        quotes: Quotes,
        slots: Slots,
    ) -> None:
        """A task per order, made only when a permit of ``slots.ahead`` is
        free (the task gives it back): a round's tasks no longer grow with
        its orders (a 1,000-order round made 1,000 tasks up front, 936 of
        them waiting on the semaphore). Nothing more is spawned once one
        has failed; cancelled, the round cancels the tasks it made, as the
        gather of them all did."""
        tasks: list[asyncio.Task[None]] = []
        failed: list[asyncio.Task[None]] = []

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                failed.append(task)

        try:
            for order in batch:
                await slots.ahead.acquire()
                if failed or execution.id in self._stopping:
                    slots.ahead.release()
                    break
                task = asyncio.ensure_future(self.send(execution, order, exchange, quotes, slots))
                task.add_done_callback(done)
                tasks.append(task)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        await asyncio.gather(*tasks)

    async def send(
        self,
        execution: ExecutionRecord,
        order: OrderRecord,
        exchange: Exchange,
        quotes: Quotes,
        slots: Slots,
    ) -> None:
        """One order of a round. The caller holds one of ``slots.ahead``'s
        permits: it is given back once the order has left its exchange slot
        (or was not sent)."""
        try:
            if execution.id in self._stopping:
                return
            decided = await self._decide(execution, order, exchange, quotes, slots)
            if decided is None:
                return
            async with slots.exchange:
                why = await self._withdrawn(execution, decided)
                sent = None if why else await self._place(decided, exchange)
        finally:
            slots.ahead.release()
        if why:
            await self._records.move(execution, decided, OrderState.CANCELLED, reason=why)
            asset, amount = self._holds(decided, exchange)
            quotes.reserve(asset, -amount)
            limiter = self._limiters.get(exchange.account)
            if limiter is not None:
                limiter.release()
            return
        await self._record(execution, decided, sent, exchange, slots)

    async def _decide(
        self,
        execution: ExecutionRecord,
        order: OrderRecord,
        exchange: Exchange,
        quotes: Quotes,
        slots: Slots,
    ) -> OrderRecord | None:
        """The order recorded SUBMITTED (what it takes reserved in
        ``quotes``), or None: it was cancelled, deferred or refused."""
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
            return None
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
            return None
        quote = exchange.quote
        cap = day_cap(execution.portfolio_value, execution.policy.cap_daily, quotes.current_cap)
        limiter = self._limiters.get(exchange.account)
        # The account's budget is taken before the decision, so that the
        # send time recorded is when the order may really go.
        if limiter is not None:
            await limiter.acquire()
        # What the order would take is held before it is decided: every
        # decision of the round sees the orders decided before it, their
        # units committed or not (a shared unit decides many at once). It
        # is given back unless the order is SUBMITTED: a round never
        # decides to spend a balance twice.
        free_quote, free_base = quotes.free(quote), quotes.free(asset)
        held = self._hold(order.side, order.symbol, quantity, price, exchange)
        quotes.reserve(*held)

        def decide(uow: UnitOfWork) -> OrderRecord:
            # Read and decide in the unit that records the decision: the
            # day's traded notional cannot move between the check and the
            # SUBMITTED row. The account's other orders still at the
            # exchange count too (their fills are not recorded yet): a
            # PARALLEL round checked against fills alone would let every
            # order in flight pass the daily cap and the daily limit.
            uow.daily_notional.serialize(exchange.account)
            used = uow.daily_notional.counted(exchange.account, now.date())
            owner = uow.orders.owner_of(order.client_order_id)
            # The duplicate rule: this client order id belongs to another order.
            known = {order.client_order_id} if owner not in (None, order.id) else set()
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
                free_quote,
                free_base,
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

        try:
            decided = await slots.decisions.write(decide)
        except BaseException:
            quotes.reserve(held[0], -held[1])
            raise
        if decided.state is not OrderState.SUBMITTED:
            quotes.reserve(held[0], -held[1])
            # Deferred or refused before the exchange heard of it: a backlog
            # of late slices must not use up the account's order budget.
            if limiter is not None:
                limiter.release()
            return None
        return decided

    def _holds(self, order: OrderRecord, exchange: Exchange) -> tuple[str, Decimal]:
        """The asset and the amount a decided order takes until it ends."""
        return self._hold(order.side, order.symbol, order.quantity, order.price, exchange)

    def _hold(
        self, side: str, symbol: str, quantity: Decimal, price: Decimal, exchange: Exchange
    ) -> tuple[str, Decimal]:
        """The asset and the amount an order of ``quantity`` at ``price`` takes."""
        if side == Side.BUY.value:
            cost = money.mul(money.mul(quantity, price), 1 + self._limits.fee_rate)
            return exchange.quote, cost
        return symbol.partition("/")[0], quantity

    async def _withdrawn(self, execution: ExecutionRecord, order: OrderRecord) -> str:
        """Why a decided order must not be sent after all (a cancel accepted
        or a freeze placed while it waited for its slot), or ""."""
        if execution.id in self._stopping:
            # The flag may carry no reason (CancelExecution's): the stored
            # CANCELLING state has it.
            latest = await self._store.read(lambda uow: uow.executions.get(execution.id))
            why = cancel_reason(latest) if latest is not None else ""
            return f"{why or self._stopping[execution.id] or 'cancelled'}, {_WITHDRAWN}"
        leg = execution.legs[order.leg_index]
        blocking = blocked_by(leg, await self._freezes.active(), self._clock.now())
        if blocking:
            names = ", ".join(f"{f.name} ({f.type.value})" for f in blocking)
            return f"forbidden by {names}, {_WITHDRAWN}"
        return ""

    async def _place(self, order: OrderRecord, exchange: Exchange) -> Sent:
        """Sends a decided order, retrying what was refused before it
        reached the exchange (unavailable, rate limited)."""
        limiter = self._limiters.get(exchange.account)
        for attempt in range(SEND_RETRIES):
            try:
                return await exchange.create_order(
                    order.client_order_id, order.symbol, order.side, order.quantity, order.price
                )
            except RateLimited as exc:
                # Refused before it was placed: the same id may be sent again.
                if limiter is not None:
                    limiter.retry_after(exc.retry_after)
                    await limiter.acquire()
            except ExchangeUnavailable:
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
            except (OrderRejected, OutcomeUnknown) as exc:
                return exc
        return None

    async def _record(
        self,
        execution: ExecutionRecord,
        order: OrderRecord,
        sent: Sent,
        exchange: Exchange,
        slots: Slots,
    ) -> None:
        """Records what the exchange answered."""
        if isinstance(sent, ExchangeOrder):
            answer = sent
            await slots.answers.write(
                lambda uow: self._records.apply_in(uow, execution, order, answer)
            )
        elif isinstance(sent, OrderRejected):
            await self._records.move(execution, order, OrderState.REJECTED, reason=str(sent)[:500])
        elif isinstance(sent, OutcomeUnknown):
            order = await self._records.move(
                execution, order, OrderState.UNKNOWN, reason=f"outcome unknown: {sent}"[:500]
            )
            # The look-up is a call at the exchange like the send: in a slot.
            async with slots.exchange:
                await self._resolve(execution, order, exchange)
        else:
            await self._records.move(
                execution,
                order,
                OrderState.REJECTED,
                reason=(
                    f"not placed after {SEND_RETRIES} tries (exchange unavailable or rate limited)"
                ),
            )
