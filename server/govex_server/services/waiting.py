"""Waiting for a time or a nudge, whichever comes first."""

from __future__ import annotations

import asyncio
from datetime import datetime

from govex_server.domain.clock import Clock


async def until_or_poked(clock: Clock, deadline: datetime, poked: asyncio.Event) -> None:
    """Returns at ``deadline`` (by ``clock``) or when ``poked`` is set."""
    sleeper = asyncio.ensure_future(clock.sleep_until(deadline))
    waiter = asyncio.ensure_future(poked.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waiter.cancel()
