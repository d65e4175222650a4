"""Execution under a flaky exchange (issue 12): 100 executions of 10 orders
each, run at once, on a paper exchange that fails 10% of its calls at random
(reads and cancels unavailable; a send unavailable before it reaches the
exchange, or timing out after it did). Printed: the time, the runner
restarts, and what the check found; verified, not assumed: every execution
ended, no client order id reached the exchange twice, and every order the
store says was placed is in the book with the same fill.

Part of ``make bench``; alone: ``python -m tests.bench.fault_bench``."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from govex_server.exchanges.base import ExchangeOrder
from govex_server.exchanges.errors import ExchangeUnavailable, OutcomeUnknown
from govex_server.exchanges.paper import PaperExchange
from tests.bench.engine_rig import add_executions, rig

EXECUTIONS = 100
ORDERS = 10
FAULT_RATE = 0.10


class Flaky:
    """The paper account behind a transport that fails FAULT_RATE of calls."""

    def __init__(self, inner: PaperExchange, rng: random.Random) -> None:
        self._inner = inner
        self._rng = rng
        self.faults = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _fail(self) -> bool:
        if self._rng.random() < FAULT_RATE:
            self.faults += 1
            return True
        return False

    async def prices(self, assets: Iterable[str]) -> Any:
        if self._fail():
            raise ExchangeUnavailable("503 (prices)")
        return await self._inner.prices(assets)

    async def markets(self) -> Any:
        if self._fail():
            raise ExchangeUnavailable("503 (markets)")
        return await self._inner.markets()

    async def balances(self) -> Any:
        if self._fail():
            raise ExchangeUnavailable("503 (balances)")
        return await self._inner.balances()

    async def fetch_order(self, client_id: str, symbol: str = "") -> ExchangeOrder:
        if self._fail():
            raise ExchangeUnavailable("503 (fetch)")
        return await self._inner.fetch_order(client_id, symbol)

    async def cancel_order(self, client_id: str, symbol: str = "") -> ExchangeOrder:
        if self._fail():
            raise ExchangeUnavailable("503 (cancel)")
        return await self._inner.cancel_order(client_id, symbol)

    async def create_order(
        self, client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
    ) -> ExchangeOrder:
        if self._fail():
            if self._rng.random() < 0.5:
                raise ExchangeUnavailable("503 (send, never reached)")
            await self._inner.create_order(client_id, symbol, side, quantity, price)
            raise OutcomeUnknown("timed out after the exchange accepted the order")
        return await self._inner.create_order(client_id, symbol, side, quantity, price)


async def run() -> bool:
    holder: list[Flaky] = []

    def flaky_transport(paper: PaperExchange) -> Flaky:
        holder.append(Flaky(paper, random.Random(12)))
        return holder[0]

    bench = await rig(wrap=flaky_transport)
    flaky, engine = holder[0], bench.engine
    names = [f"executions/{e}" for e in await add_executions(bench.store, EXECUTIONS, ORDERS, 4)]
    started = time.perf_counter()
    await asyncio.gather(*(engine.run_supervised(n.split("/")[1]) for n in names))
    seconds = time.perf_counter() - started
    views = [await engine.get(n) for n in names]
    ended = sum(v.execution.state.terminal for v in views)
    stored = {o.client_order_id: o for v in views for o in v.orders if o.exchange_order_id}
    book = {o.client_id: o for o in await bench.paper.orders("gx")}
    with sqlite3.connect(bench.book_file) as db:
        twice = db.execute("SELECT COUNT(*) FROM received WHERE count > 1").fetchone()[0]
    agree = set(stored) == set(book) and all(
        book[cid].filled == o.filled for cid, o in stored.items()
    )
    await bench.store.close()
    ok = ended == EXECUTIONS and twice == 0 and agree
    print(
        f"execution under faults: {EXECUTIONS} executions x {ORDERS} orders, "
        f"{FAULT_RATE:.0%} of exchange calls failing ({flaky.faults} faults): "
        f"{seconds:.1f}s, {engine.restarts} runner restarts; {ended}/{EXECUTIONS} ended, "
        f"{twice} client order ids received twice, store = book: {agree}: "
        f"{'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> bool:
    """The run; True when every check held."""
    # The engine logs every fault and restart (an operator's lines); a
    # thousand of them would bury the figure.
    engine_log = logging.getLogger("govex.engine")
    level = engine_log.level
    engine_log.setLevel(logging.ERROR)
    try:
        return asyncio.run(run())
    finally:
        engine_log.setLevel(level)


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
