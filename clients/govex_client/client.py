"""``GovexClient``: every call of both services, async; ``SyncGovexClient``:
the same calls for code without an event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from govex_client.core import ClientConfig, new_request_id
from govex_client.errors import GovexRpcError
from govex_client.execution import ExecutionCalls
from govex_client.governance import GovernanceCalls
from govex_client.retry import RetryPolicy

__all__ = [
    "ClientConfig",
    "GovexClient",
    "GovexRpcError",
    "RetryPolicy",
    "SyncGovexClient",
    "new_request_id",
]


class GovexClient(GovernanceCalls, ExecutionCalls):
    """Every call of both services; ``async with`` closes the channel."""

    async def __aenter__(self) -> GovexClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SyncGovexClient:
    """The unary calls of ``GovexClient`` as plain blocking calls: the async
    client runs on an event loop in a thread of its own (one channel, reused
    by every call). ``with`` closes it. Streams are async only."""

    def __init__(self, config: ClientConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: GovexClient = self._run(self._make(config))

    @staticmethod
    async def _make(config: ClientConfig) -> GovexClient:
        return GovexClient(config)  # the channel belongs to the loop it is made on

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if not asyncio.iscoroutinefunction(method):
            raise AttributeError(f"{name} is not a unary call (streams are async only)")
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))

    def close(self) -> None:
        """Closes the channel and stops the loop's thread."""
        self._run(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> SyncGovexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
