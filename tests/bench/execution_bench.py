"""Execution benchmark: a 1,000-order execution on the paper exchange,
PARALLEL with max_parallel 32 and no rate limit, at 0 ms and at 20 ms
simulated exchange latency: orders per second through the engine's runner
(order row, freeze re-check, safety, send, fill, event) and the wall time
against the ideal (orders x latency / concurrency). Targets (issue 8):
>= 1,000 orders/s at 0 ms; within 1.2x the ideal at 20 ms. Printed, never
asserted. This drives the runner on pre-inserted orders, not ExecutePlan
over gRPC: the policy's ramp spreads a real plan's slices over hours, so an
end-to-end run of 1,000 orders due at once needs a plan shape the contract
does not offer yet. Each run follows a warm-up execution of 64 orders in
the same store (the first execution of a fresh store pays once for
statement compilation and cold pages), and then, as the serving process
after its start-up, the garbage collector is settled (govex_server.heap).
Each run also prints where its time went: before the first send, the sends
(how many slots were busy on average, how long a create call took), and
after the last answer. Each latency is run three times; the target is
judged on the median run."""

from __future__ import annotations

import asyncio
import statistics
import time
from decimal import Decimal

from govex_server import heap
from govex_server.domain.execution.orders import OrderState
from govex_server.exchanges.base import ExchangeOrder
from govex_server.exchanges.paper import PaperExchange
from tests.bench.engine_rig import add_executions, rig

ORDERS = 1000
PARALLEL = 32
RUNS = 3
WARM_UP = 2 * PARALLEL


class Sends:
    """When the paper account's create calls happened: where a run's time
    goes besides the exchange (before the first send, after the last
    answer) and how full the slots were in between."""

    def __init__(self) -> None:
        self.first = self.last = 0.0
        self._inside = 0
        self._since = 0.0
        self.slot_seconds = 0.0  # the sum over time of the calls in progress
        self.calls = 0

    def _tick(self, step: int) -> None:
        now = time.perf_counter()
        self.slot_seconds += self._inside * (now - self._since) if self._since else 0.0
        self._since, self._inside = now, self._inside + step
        self.calls += step > 0
        self.first = self.first or now
        self.last = now

    def watch(self, paper: PaperExchange) -> None:
        create = paper.create_order

        async def timed(
            client_id: str, symbol: str, side: str, quantity: Decimal, price: Decimal
        ) -> ExchangeOrder:
            self._tick(+1)
            try:
                return await create(client_id, symbol, side, quantity, price)
            finally:
                self._tick(-1)

        setattr(paper, "create_order", timed)  # noqa: B010 (an instance's method, replaced)


async def run(latency_ms: float) -> tuple[float, float, float, float]:
    """Seconds for ORDERS orders, the ideal seconds, and the CPU seconds and
    the wall seconds the paper book (the simulated exchange's own store)
    was busy."""
    bench = await rig(latency_ms)
    # A warm-up execution first, in the same store: the first execution of
    # a fresh store pays once for what a running server has done already
    # (statements compiled, pages cached: some 30 ms). Its orders count in
    # the day's traded notional, far below the rig's limits.
    [warm_up] = await add_executions(bench.store, 1, WARM_UP, PARALLEL)
    await bench.engine.run_supervised(warm_up)
    [execution_id] = await add_executions(bench.store, 1, ORDERS, PARALLEL)
    # What a serving process does once start-up is done (commands.serve):
    # what exists now is frozen, out of the cycle collector's way.
    heap.settle()
    sends = Sends()
    sends.watch(bench.paper)
    started = time.perf_counter()
    await bench.engine.run_supervised(execution_id)  # the runner itself, to the end
    ended = time.perf_counter()
    seconds = ended - started
    span = sends.last - sends.first
    print(
        f"  {latency_ms:g} ms: first send after {(sends.first - started) * 1000:.0f} ms; sends "
        f"over {span:.2f}s with {sends.slot_seconds / span:.1f} of {PARALLEL} slots busy on "
        f"average; the end {(ended - sends.last) * 1000:.0f} ms after the last answer; "
        f"a create call took {sends.slot_seconds / max(sends.calls, 1) * 1000:.1f} ms on average "
        f"(the paper round trip is {latency_ms:g} ms, the book's own time inside it)"
    )
    final = await bench.engine.get(f"executions/{execution_id}")
    filled = sum(o.state is OrderState.FILLED for o in final.orders)
    assert filled == ORDERS, f"only {filled} filled: {final.execution.state_reason}"
    await bench.store.close()
    book = bench.book
    return seconds, ORDERS * latency_ms / 1000 / PARALLEL, book.busy_seconds, book.held_seconds


def main() -> bool:
    """Both latencies, RUNS runs each; True when both targets are met by
    the median run. One run is a single sample on a machine whose speed
    moves by a third from minute to minute: every run is printed, and the
    target is judged on their median (as start-up is, in run_all.py)."""
    ok = True
    for latency, target in ((0.0, None), (20.0, 1.2)):
        runs = []
        for _ in range(RUNS):
            seconds, ideal, book, held = asyncio.run(run(latency))
            runs.append(seconds)
            # The paper book is the simulated exchange's own store, in this
            # process: its CPU time is the exchange's cost, not govex's.
            print(
                f"  the paper book (the simulated exchange's store) took {book:.2f} CPU-s of "
                f"the {seconds:.2f}s ({book / seconds:.0%}); without it at most "
                f"{ORDERS / max(seconds - book, 1e-9):,.0f} orders/s"
            )
            # Its one thread serves one transaction (a batch of the orders
            # that waited) at a time, waiting for the GIL between statements:
            # the wall time it was busy bounds the rate whatever govex does
            # (the CPU share above understates that).
            print(
                f"  the paper book was busy {held:.2f}s of the {seconds:.2f}s "
                f"({held / seconds:.0%}), {held / ORDERS * 1000:.2f} ms an order: it serves one "
                f"transaction at a time, so no run could exceed "
                f"{ORDERS / max(held, 1e-9):,.0f} orders/s"
            )
        seconds = statistics.median(runs)
        rate = ORDERS / seconds
        each = ", ".join(f"{r:.2f}" for r in runs)
        if target is None:
            met = rate >= 1000
            print(
                f"execution, {latency:g} ms latency: {ORDERS} orders in {seconds:.2f}s "
                f"(median of {RUNS}: {each}) = {rate:,.0f} orders/s (target >= 1,000): "
                f"{'met' if met else 'NOT met'}"
            )
        else:
            ratio = seconds / ideal
            met = ratio <= target
            print(
                f"execution, {latency:g} ms latency: {ORDERS} orders in {seconds:.2f}s "
                f"(median of {RUNS}: {each}) = {rate:,.0f} orders/s; {ratio:.3f}x the ideal "
                f"{ideal:.2f}s (target <= {target}x): {'met' if met else 'NOT met'}"
            )
        ok = ok and met
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
