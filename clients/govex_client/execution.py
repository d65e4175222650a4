"""Every ExecutionService call, with typed arguments."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence

from govex.execution.v1 import exchange_pb2, execution_pb2
from govex.execution.v1 import execution_service_pb2 as exe
from govex_client.core import ClientCore
from govex_client.paging import all_pages

# The server's defaults (sequential; the configured safety level).
DEFAULT_STRATEGY = execution_pb2.EXECUTION_STRATEGY_UNSPECIFIED
DEFAULT_SAFETY = execution_pb2.SAFETY_LEVEL_UNSPECIFIED


def _order_position(item: exe.WatchOrdersResponse) -> tuple[int, bool]:
    kind = item.WhichOneof("message")
    if kind == "heartbeat":
        return item.heartbeat.current_sequence, False
    if kind == "execution_event":
        return item.execution_event.sequence, True
    return item.event.sequence, True


class ExecutionCalls(ClientCore):
    """Executions, orders and exchange accounts."""

    async def execute_plan(
        self,
        plan: str,
        etag: str,
        *,
        dry_run: bool = False,
        strategy: execution_pb2.ExecutionStrategy.ValueType = DEFAULT_STRATEGY,
        max_parallel: int = 0,
        exchange: str = "",
        safety_level: execution_pb2.SafetyLevel.ValueType = DEFAULT_SAFETY,
        request_id: str = "",
    ) -> execution_pb2.Execution:
        """Starts the ACTIVE plan's execution (a dry run simulates it)."""
        request = exe.ExecutePlanRequest(
            plan=plan,
            etag=etag,
            dry_run=dry_run,
            strategy=strategy,
            max_parallel=max_parallel,
            exchange=exchange,
            safety_level=safety_level,
            request_id=request_id,
        )
        return (await self.call(self.execution.ExecutePlan, request)).execution

    async def validate_plan(
        self,
        plan: str,
        *,
        exchange: str = "",
        safety_level: execution_pb2.SafetyLevel.ValueType = DEFAULT_SAFETY,
    ) -> exe.ValidatePlanResponse:
        """What executing ``plan`` would send, and what would block it."""
        request = exe.ValidatePlanRequest(plan=plan, exchange=exchange, safety_level=safety_level)
        return await self.call(self.execution.ValidatePlan, request)

    async def cancel_execution(
        self, name: str, reason: str = "", *, request_id: str = ""
    ) -> execution_pb2.Execution:
        """Stops an execution: its open orders are cancelled at the exchange."""
        request = exe.CancelExecutionRequest(name=name, reason=reason, request_id=request_id)
        return (await self.call(self.execution.CancelExecution, request)).execution

    async def get_execution(self, name: str) -> execution_pb2.Execution:
        """One execution, with its legs and order counts."""
        request = exe.GetExecutionRequest(name=name)
        return (await self.call(self.execution.GetExecution, request)).execution

    async def list_executions(
        self,
        *,
        states: Sequence[execution_pb2.ExecutionState.ValueType] = (),
        plan: str = "",
        filter: str = "",
    ) -> list[execution_pb2.Execution]:
        """Every matching execution, newest first."""
        request = exe.ListExecutionsRequest(states=states, plan=plan, filter=filter)
        return await all_pages(self, self.execution.ListExecutions, request, "executions")

    async def list_orders(
        self,
        parent: str,
        *,
        states: Sequence[execution_pb2.OrderState.ValueType] = (),
        filter: str = "",
    ) -> list[execution_pb2.Order]:
        """The orders of execution ``parent`` (``executions/-``: of all)."""
        request = exe.ListOrdersRequest(parent=parent, states=states, filter=filter)
        return await all_pages(self, self.execution.ListOrders, request, "orders")

    async def get_exchange(self, name: str) -> exe.GetExchangeResponse:
        """One account with its balances and markets."""
        return await self.call(self.execution.GetExchange, exe.GetExchangeRequest(name=name))

    async def list_exchanges(self) -> list[exchange_pb2.Exchange]:
        """Every configured exchange account."""
        request = exe.ListExchangesRequest()
        return await all_pages(self, self.execution.ListExchanges, request, "exchanges")

    async def connect_exchange(
        self,
        name: str,
        kind: exchange_pb2.ExchangeKind.ValueType,
        *,
        ccxt_id: str = "",
        sandbox: bool = True,
        credentials: exchange_pb2.ExchangeCredentials | None = None,
        quote_currency: str = "",
        max_orders_per_window: int = 0,
        request_id: str = "",
    ) -> exchange_pb2.Exchange:
        """Adds or replaces an exchange account (admin)."""
        request = exe.ConnectExchangeRequest(
            name=name,
            kind=kind,
            ccxt_id=ccxt_id,
            sandbox=sandbox,
            credentials=credentials,
            quote_currency=quote_currency,
            max_orders_per_window=max_orders_per_window,
            request_id=request_id,
        )
        return (await self.call(self.execution.ConnectExchange, request)).exchange

    def watch_orders(
        self, execution: str = "", after_sequence: int = 0, *, from_oldest: bool = False
    ) -> AsyncIterator[exe.WatchOrdersResponse]:
        """Order and execution changes live (of one execution, or of all),
        resumed across cuts; heartbeats included."""

        def open_stream(after: int) -> AsyncIterable[exe.WatchOrdersResponse]:
            request = exe.WatchOrdersRequest(
                execution=execution, after_sequence=after, from_oldest=from_oldest and after == 0
            )
            return self.execution.WatchOrders(request, metadata=self.metadata)

        return self.resume(open_stream, _order_position, after_sequence)
