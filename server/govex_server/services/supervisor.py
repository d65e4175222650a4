"""The supervisor of the execution runners."""

from __future__ import annotations

import asyncio
import logging
import random
from contextvars import Context
from dataclasses import replace

from govex_server.domain.clock import Clock
from govex_server.domain.execution.records import ExecutionState
from govex_server.domain.execution.restarts import failures_in_a_row, restart_delay
from govex_server.exchanges.errors import ExchangeError
from govex_server.services.execution_views import STILL_CANCELLING, cancel_reason
from govex_server.services.leases import LeaseLost, Leases
from govex_server.services.runner import Runner, RunnerSignals
from govex_server.services.waiting import until_or_poked
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.engine")


class Supervisor:
    """Owns the runners: one task per running execution, restarted after a
    failure with a growing, jittered wait, forever; the last error on the
    execution for GetExecution."""

    def __init__(
        self, store: Store, clock: Clock, runner: Runner, signals: RunnerSignals, leases: Leases
    ) -> None:
        self._store = store
        self._clock = clock
        self._runner = runner
        self._signals = signals
        self._leases = leases
        self.runners: dict[str, asyncio.Task[None]] = {}
        # Runner restarts after a failure, since start (for the benchmark).
        self.restarts = 0

    def spawn(self, execution_id: str) -> None:
        self._signals.wake[execution_id] = asyncio.Event()
        # A fresh context: the runner outlives the call that started it, and
        # its log lines must not carry that call's rpc and principal.
        task = asyncio.create_task(
            self.run(execution_id), name=f"execution-{execution_id}", context=Context()
        )
        self.runners[execution_id] = task
        task.add_done_callback(lambda _t: self.runners.pop(execution_id, None))

    def poke(self, execution_id: str | None = None) -> None:
        """Something changed (a fill, a freeze): runners look again."""
        for eid, event in self._signals.wake.items():
            if execution_id is None or eid == execution_id:
                event.set()

    def stop_soon(self, execution_id: str) -> None:
        """After a cancel is committed: this server's runner stops the
        execution (one is started if none runs here, so that a failing
        exchange is retried under the supervisor, never in the request).
        An execution another replica owns is left to its owner, which hears
        of the cancel through the store's notifications."""
        if not self._leases.holds(execution_id):
            return
        self._signals.stopping.setdefault(execution_id, "")
        self.poke(execution_id)
        if execution_id not in self.runners:
            self.spawn(execution_id)

    async def run(self, execution_id: str) -> None:
        """The supervisor of one execution's runner: a runner that fails (an
        exchange or store error) runs again after a growing, jittered wait,
        forever; a cancel or a freeze cuts the wait short."""
        failures = 0
        while True:
            started = self._clock.now()
            try:
                await self._runner.run(execution_id)
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost as exc:
                # Another replica owns it now (or will): nothing more here.
                log.warning("%s; its runner here stops", exc)
                self._signals.stopping.pop(execution_id, None)
                return
            except Exception as exc:
                failures = failures_in_a_row(failures, self._clock.now() - started)
                self.restarts += 1
                delay = restart_delay(failures, random.random())
                if isinstance(exc, ExchangeError):
                    log.warning(
                        "execution %s: runner stopped by the exchange (%s); restart %d in %.1fs",
                        execution_id,
                        exc,
                        failures,
                        delay.total_seconds(),
                    )
                else:
                    log.exception(
                        "execution %s: runner failed; restart %d in %.1fs",
                        execution_id,
                        failures,
                        delay.total_seconds(),
                    )
                await self._note_failure(execution_id, f"restart {failures} after: {exc}")
                wake = self._signals.wake.setdefault(execution_id, asyncio.Event())
                wake.clear()
                await until_or_poked(self._clock, self._clock.now() + delay, wake)

    async def _note_failure(self, execution_id: str, text: str) -> None:
        """The runner's last error, on the execution (GetExecution shows it
        in state_reason while it runs; the end's reason replaces it)."""

        def unit(uow: UnitOfWork) -> None:
            self._leases.fence_in(uow, execution_id)
            current = uow.executions.get(execution_id)
            if current is None or current.state.terminal:
                return
            noted_text = text
            if current.state is ExecutionState.CANCELLING:
                # The cancel's reason stays first: it is how the end reads.
                noted_text = f"{cancel_reason(current)}{STILL_CANCELLING}{text})"
            noted = replace(current, state_reason=noted_text[:500], version=current.version + 1)
            uow.executions.replace(noted, current.version)

        try:
            await self._store.write(unit)
        except LeaseLost:
            pass  # the next run of the runner stops on it
        except Exception:
            log.exception("execution %s: the runner's error could not be recorded", execution_id)

    def lose(self, execution_ids: list[str]) -> None:
        """Leases lost: their runners here stop at once."""
        for eid in execution_ids:
            task = self.runners.get(eid)
            if task is not None:
                task.cancel()
            self._signals.stopping.pop(eid, None)

    async def stop(self) -> None:
        """Stops every runner (orders stay as they are; the next start
        reconciles them)."""
        tasks = list(self.runners.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
