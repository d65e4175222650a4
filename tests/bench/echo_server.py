"""The baseline: a bare grpc.aio server whose one method returns its request
bytes unchanged. Benchmarks divide govex's throughput by this one's, measured
the same way in the same run, so machine noise cancels out."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def main(port: int) -> None:
    """Serves /bench.Echo/Echo until killed."""
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
