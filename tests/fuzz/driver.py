"""Sends fuzzed calls to a running server and counts the status of each."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tests.fuzz.bodies import BodyMaker, Call

# A stream that yields or waits is healthy: its deadline ends it.
STREAM_DEADLINE = 0.5
UNARY_DEADLINE = 30.0


def _metadata(identity: str) -> tuple[tuple[str, str], ...]:
    if not identity:
        return ()
    return (("authorization", f"Bearer dev-{identity}-token"),)


async def _one(channel: grpc.aio.Channel, call: Call) -> str:
    metadata = _metadata(call.identity)
    try:
        if call.method.server_streaming:
            open_stream: Any = channel.unary_stream(call.path)
            stream = open_stream(call.body, metadata=metadata, timeout=STREAM_DEADLINE)
            async for _ in stream:
                break
            stream.cancel()
            return "OK (stream)"
        unary: Any = channel.unary_unary(call.path)
        await unary(call.body, metadata=metadata, timeout=UNARY_DEADLINE)
        return "OK"
    except grpc.aio.AioRpcError as error:
        return error.code().name


@dataclass
class FuzzResult:
    """What a run saw."""

    histogram: Counter[str] = field(default_factory=Counter)
    per_method: Counter[str] = field(default_factory=Counter)
    # For INTERNAL and UNKNOWN: the methods that answered it.
    bad: dict[str, list[str]] = field(default_factory=dict)


async def fuzz(
    target: str,
    calls: int,
    seed: int,
    concurrency: int = 16,
    progress: Callable[[int, Counter[str]], None] | None = None,
) -> FuzzResult:
    """Makes ``calls`` random calls and counts their statuses."""
    maker = BodyMaker(seed)
    result = FuzzResult()
    pending = iter(range(calls))

    async with grpc.aio.insecure_channel(target) as channel:

        async def worker() -> None:
            for n in pending:
                call = maker.call()
                status = await _one(channel, call)
                result.histogram[status] += 1
                result.per_method[call.method.full_name] += 1
                if status in ("INTERNAL", "UNKNOWN"):
                    result.bad.setdefault(status, []).append(call.method.full_name)
                if progress is not None and (n + 1) % 5000 == 0:
                    progress(n + 1, result.histogram)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result
