"""What the engine is asked and answers: ExecutePlan's request, an execution
with its orders, and the reads (GetExecution, ListExecutions, ListOrders)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from govex_server.domain import filters, list_filters
from govex_server.domain.errors import not_found
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import (
    ExecutionRecord,
    ExecutionState,
    OrderRecord,
    Strategy,
)
from govex_server.domain.execution.safety import Level
from govex_server.domain.ids import parse_name
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.exchanges.base import parse_account
from govex_server.store.database import Store, UnitOfWork
from govex_server.store.execution_repositories import OrderRepository

log = logging.getLogger("govex.engine")


@dataclass(frozen=True)
class ExecuteRequest:
    """What ExecutePlan asks for."""

    plan: str
    etag: str
    dry_run: bool
    strategy: Strategy
    max_parallel: int
    exchange: str
    level: Level | None


@dataclass(frozen=True)
class ExecutionView:
    """An execution and its orders."""

    execution: ExecutionRecord
    orders: list[OrderRecord]


STILL_CANCELLING = " (still cancelling: "


def cancel_reason(execution: ExecutionRecord) -> str:
    """A CANCELLING execution's reason, without the runner's last error."""
    return execution.state_reason.split(STILL_CANCELLING)[0]


class ExecutionQueries:
    """GetExecution, ListExecutions, ListOrders."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, name: str) -> ExecutionView:
        """One execution and its orders."""
        execution_id = parse_name(name, "executions")
        return await self._view(execution_id, OrderRepository.for_execution)

    async def live(self, execution_id: str) -> ExecutionView:
        """One execution and only its orders not final yet: what its runner
        acts on at each turn (the final ones are counted at its end)."""
        return await self._view(execution_id, OrderRepository.live_for_execution)

    async def _view(
        self, execution_id: str, orders_of: Callable[[OrderRepository, str], list[OrderRecord]]
    ) -> ExecutionView:
        def unit(uow: UnitOfWork) -> ExecutionView:
            execution = uow.executions.get(execution_id)
            if execution is None:
                raise not_found("govex.io/Execution", f"executions/{execution_id}")
            return ExecutionView(execution, orders_of(uow.orders, execution_id))

        return await self._store.read(unit)

    async def list_executions(
        self,
        states: Sequence[ExecutionState],
        plan: str,
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[ExecutionView], str]:
        """Executions newest first, with their orders, meeting the AIP-160
        ``filter_text`` (whose plan and exchange are resource names)."""
        plan_id = parse_name(plan, "plans", "plan") if plan else None
        conditions = [
            replace(c, value=parse_name(c.value, "plans", "filter"))
            if c.field == "plan"
            else replace(c, value=parse_account(c.value, "filter"))
            if c.field == "exchange"
            else c
            for c in filters.parse(filter_text, list_filters.EXECUTIONS)
        ]
        key = filter_key([plan, *sorted(s.value for s in states), *filters.key(conditions)])
        page = parse_page(page_size, page_token, key)

        def unit(uow: UnitOfWork) -> tuple[list[ExecutionRecord], list[ExecutionView]]:
            found = uow.executions.list(states, plan_id, page.after_id, page.size + 1, conditions)
            views = [ExecutionView(e, uow.orders.for_execution(e.id)) for e in found[: page.size]]
            return found, views

        found, views = await self._store.read(unit)
        token = next_token(page, views[-1].execution.id if views else None, len(found) > page.size)
        return views, token

    async def list_orders(
        self,
        parent: str,
        states: Sequence[OrderState],
        page_size: int,
        page_token: str,
        filter_text: str = "",
    ) -> tuple[list[OrderRecord], str]:
        """Orders oldest first, of one execution or of all ("executions/-"),
        meeting the AIP-160 ``filter_text``."""
        execution_id = (
            None if parent == "executions/-" else parse_name(parent, "executions", "parent")
        )
        conditions = filters.parse(filter_text, list_filters.ORDERS)
        key = filter_key([parent, *sorted(s.value for s in states), *filters.key(conditions)])
        page = parse_page(page_size, page_token, key)

        def unit(uow: UnitOfWork) -> list[OrderRecord]:
            if execution_id is not None and uow.executions.get(execution_id) is None:
                raise not_found("govex.io/Execution", parent)
            return uow.orders.page(execution_id, states, page.after_id, page.size + 1, conditions)

        found = await self._store.read(unit)
        orders = found[: page.size]
        return orders, next_token(page, orders[-1].id if orders else None, len(found) > page.size)
