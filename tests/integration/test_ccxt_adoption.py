"""Reconciliation adopts strays on ccxt accounts too (issue 12 item 11): the
real ccxt Binance class behind a fake transport lists the account's open
orders (fetch_open_orders), and an order under our prefix that the store does
not know is adopted into its running execution; an account that cannot be
listed is logged and counted, never skipped silently."""

from __future__ import annotations

from govex_server.domain.execution.orders import OrderState, client_order_id
from govex_server.exchanges.ccxt_adapter import CcxtExchange
from govex_server.exchanges.paper import PaperExchange
from tests.bench.engine_rig import add_executions, rig
from tests.fake_transport import FakeSession
from tests.unit.test_ccxt_adapter import FakeBinance, resting


class _Binance:
    """Builds the rig's account on ccxt's Binance class (named ``account``:
    "paper" is the one the rig's executions run on), and closes it."""

    def __init__(self, fake: FakeBinance, account: str = "paper") -> None:
        self.fake, self.account = fake, account
        self.made: list[CcxtExchange] = []

    def __call__(self, _paper: PaperExchange) -> CcxtExchange:
        made = CcxtExchange(
            self.account,
            "binance",
            True,
            {"api_key": "k", "secret": "s"},
            session=FakeSession(self.fake),
        )
        self.made.append(made)
        return made

    async def close(self) -> None:
        for made in self.made:
            await made.close()


async def test_a_stray_open_order_on_a_ccxt_account_is_adopted() -> None:
    fake = FakeBinance()
    binance = _Binance(fake)
    bench = await rig(wrap=binance)
    try:
        [execution_id] = await add_executions(bench.store, 1, 3, 1)
        stray = client_order_id(execution_id, 0, 7, 0)  # sent, then the row was lost
        resting(fake, stray, "PARTIALLY_FILLED")
        resting(fake, client_order_id("01ARZ3NDEKTSV4RRFFQ69G5FAV", 0, 1, 0))  # no such run
        await bench.engine.reconcile()
        assert bench.engine.adopted == [stray]
        orders = await bench.store.read(lambda uow: uow.orders.for_execution(execution_id))
        [adopted] = [o for o in orders if o.client_order_id == stray]
        assert (adopted.state, str(adopted.filled), adopted.slice_index) == (
            OrderState.PARTIALLY_FILLED,
            "0.1",
            7,
        )
        assert bench.engine.adoption_failures == 0
    finally:
        await binance.close()
        await bench.store.close()


async def test_a_stray_is_adopted_only_from_its_executions_account() -> None:
    fake = FakeBinance()
    binance = _Binance(fake, account="binance-other")
    bench = await rig(wrap=binance)
    try:
        [execution_id] = await add_executions(bench.store, 1, 3, 1)  # runs on "paper"
        resting(fake, client_order_id(execution_id, 0, 7, 0))
        await bench.engine.reconcile()
        assert bench.engine.adopted == []  # its id names a run of another account
    finally:
        await binance.close()
        await bench.store.close()


async def test_an_account_that_cannot_list_its_orders_is_counted() -> None:
    fake = FakeBinance()
    fake.next_error = (503, {"code": -1, "msg": "unavailable"}, {})
    binance = _Binance(fake)
    bench = await rig(wrap=binance)
    try:
        await bench.engine.reconcile()
        assert bench.engine.adoption_failures == 1
        assert bench.engine.adopted == []
    finally:
        await binance.close()
        await bench.store.close()
