"""Reconciliation of orders with their exchanges at start-up."""

from __future__ import annotations

import logging

from govex_server.domain.clock import Clock
from govex_server.domain.execution.orders import PREFIX, OrderState, parse_client_order_id, state_of
from govex_server.domain.execution.records import ExecutionRecord, OrderRecord
from govex_server.domain.ids import UlidFactory
from govex_server.exchanges.base import Exchange, ExchangeOrder, ExchangeRegistry
from govex_server.exchanges.errors import ExchangeError
from govex_server.services.fenced_exchange import FencedExchange
from govex_server.services.order_manager import OrderManager
from govex_server.services.order_records import OrderRecorder
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")


class Reconciler:
    """Start-up reconciliation: every order whose outcome is not final is
    brought to its true state, and orders the exchanges have under our
    prefix that the store does not know are adopted."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        exchanges: ExchangeRegistry,
        orders: OrderManager,
        records: OrderRecorder,
    ) -> None:
        self._store = store
        self._clock = clock
        self._exchanges = exchanges
        self._orders = orders
        self._records = records
        self._ids = UlidFactory()
        self.adopted: list[str] = []
        # Accounts whose orders reconciliation could not list.
        self.adoption_failures = 0

    async def reconcile(self, owned: frozenset[str], resolve: bool = True) -> None:
        """Brings every order of the ``owned`` executions (those whose lease
        this replica holds) whose outcome is not final to its true state
        (unless not ``resolve``: their runners do it), and adopts orders the
        exchanges have under our prefix that the store does not know, if they
        belong to an owned execution."""

        def unit(uow: UnitOfWork) -> tuple[list[OrderRecord], set[str], dict[str, ExecutionRecord]]:
            return (
                uow.orders.unresolved(),
                uow.orders.client_ids(),
                {e.id[-12:]: e for e in uow.executions.running()},
            )

        unresolved, known, running = await self._store.read(unit)
        for order in unresolved if resolve else ():
            execution_id = order.execution_id
            execution = await self._store.read(
                lambda uow: uow.executions.get(execution_id)  # noqa: B023 - awaited at once
            )
            if execution is None:
                continue
            exchange = self._exchanges.get(f"exchanges/{execution.exchange}")
            fenced: Exchange = exchange
            if not execution.state.terminal:
                if execution_id not in owned:
                    continue  # another replica's: its owner reconciles them
                fenced = FencedExchange(exchange, self._records.leases, execution_id)
            if order.state in (OrderState.SUBMITTED, OrderState.UNKNOWN):
                await self._orders.resolve(execution, order, fenced)
            else:
                await self._orders.refresh(execution, order, fenced)
        for exchange in self._exchanges.all():
            try:
                listed = await exchange.orders(PREFIX)
            except ExchangeError as exc:
                # Not silent: strays of this account stay unknown until the
                # next start can list them.
                log.error(
                    "reconciliation could not list the orders of %s, strays are not adopted: %s",
                    exchange.account,
                    exc,
                )
                self.adoption_failures += 1
                continue
            for found in listed:
                key = parse_client_order_id(found.client_id)
                if found.client_id in known or key is None:
                    continue
                execution = running.get(key.execution_tag)
                if execution is None or execution.exchange != exchange.account:
                    log.error(
                        "order %s on %s belongs to no running execution",
                        found.client_id,
                        exchange.account,
                    )
                    continue
                if execution.id not in owned:
                    continue  # its owner adopts it
                await self._adopt(execution, found, key.leg, key.slice, key.attempt)

    async def _adopt(
        self,
        execution: ExecutionRecord,
        found: ExchangeOrder,
        leg: int,
        slice_index: int,
        attempt: int,
    ) -> None:
        now = self._clock.now()
        legs = execution.legs
        operation = legs[leg].operation.value if leg < len(legs) else "REBALANCING"
        adopted = OrderRecord(
            id=self._ids.new(now),
            execution_id=execution.id,
            client_order_id=found.client_id,
            symbol=found.symbol,
            side=found.side,
            quantity=found.quantity,
            price=found.price,
            reference_price=found.price,
            leg_index=leg,
            slice_index=slice_index,
            attempt=attempt,
            operation=operation,
            day=0,
            scheduled_time=now,
            state=state_of(found.status, found.filled),
            create_time=now,
            update_time=now,
            state_reason="adopted at reconciliation",
            exchange_order_id=found.exchange_id,
            filled=found.filled,
            average_price=found.average_price,
            fee=found.fee,
        )

        def unit(uow: UnitOfWork) -> None:
            self._records.leases.fence_in(uow, execution.id)
            uow.orders.add(adopted)
            self._records.order_event(uow, adopted, execution)

        await self._store.write(unit)
        self.adopted.append(found.client_id)
        log.warning("adopted order %s of %s found on the exchange", found.client_id, execution.name)
