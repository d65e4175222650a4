"""Orders still at the exchange count against the daily notional limit: a
PARALLEL round sends several orders before any fill is recorded, and each
must be checked against what the others may still trade, not against the
recorded fills alone (which would let every order in flight pass).

ExecutePlan checks a new execution's orders together, so this drives the
engine on orders already in the store (as after a restart, or a later day's
slices): the runner's own check is the one under test. On PostgreSQL the
four checks run on four connections at once: only the account's lock makes
each one wait for, and see, the orders the others sent."""

from __future__ import annotations

from decimal import Decimal

from govex_server.domain.execution.orders import OrderState
from tests.bench.engine_rig import add_executions, rig


async def test_orders_in_flight_count_against_the_daily_notional_limit(database_url: str) -> None:
    # Four buys of about 500 each, all due now, four at a time; the paper
    # latency keeps them at the exchange together. The limit has room for
    # two of them, not three.
    bench = await rig(
        latency_ms=300, daily_notional_limit=Decimal(1_250), database_url=database_url
    )
    try:
        [execution_id] = await add_executions(bench.store, 1, orders=4, parallel=4)
        await bench.engine.run_supervised(execution_id)
        final = await bench.engine.get(f"executions/{execution_id}")
        sent = [o for o in final.orders if o.exchange_order_id]
        refused = [o for o in final.orders if o.state is OrderState.REJECTED]
        assert len(sent) == 2, [(o.state, o.state_reason) for o in final.orders]
        assert all(o.state is OrderState.FILLED for o in sent)
        assert len(refused) == 2
        assert all("DAILY_NOTIONAL" in o.state_reason for o in refused), refused
        # What the exchange saw, and what the account traded.
        assert len(await bench.paper.orders("")) == 2
        traded = await bench.store.read(
            lambda uow: uow.daily_notional.get("paper", final.execution.create_time.date())
        )
        assert 0 < traded <= Decimal(1_250)
    finally:
        await bench.store.close()
