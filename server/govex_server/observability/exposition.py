"""The Prometheus exposition: ``GET /metrics`` on ``metrics_listen``.

A small asyncio HTTP/1.1 responder on the server's own loop, rather than
prometheus_client's threaded server: the census is read from the store with
the same async code as everything else, once per scrape, before the text is
rendered. Anything but GET /metrics (and / for a pointer) is 404; one
request per connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from govex_server.observability.census import CensusCollector, CensusTaker
from govex_server.observability.metrics import Metrics

log = logging.getLogger("govex.metrics")
# A scrape that has not sent its request line in this long is dropped.
REQUEST_TIMEOUT = 10.0


class Exposition:
    """Serves ``metrics`` and the census on ``host:port``."""

    def __init__(self, metrics: Metrics, taker: CensusTaker) -> None:
        self._metrics = metrics
        self._taker = taker
        self._collector = CensusCollector()
        metrics.registry.register(self._collector)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server = await asyncio.start_server(self._serve, host.strip("[]"), int(port))
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def render(self) -> bytes:
        """The exposition text, with a fresh census."""
        self._collector.census = await self._taker.take()
        return generate_latest(self._metrics.registry)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_head(reader), REQUEST_TIMEOUT)
            method, path = [*request.split(" "), "", ""][:2]
            if method not in ("GET", "HEAD"):
                await _answer(writer, 405, b"only GET\n")
            elif path.split("?")[0] == "/metrics":
                body = await self.render()
                await _answer(writer, 200, body, CONTENT_TYPE_LATEST, method == "HEAD")
            elif path == "/":
                await _answer(writer, 200, b"govex metrics: /metrics\n")
            else:
                await _answer(writer, 404, b"not found: /metrics\n")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("metrics scrape failed")
            with contextlib.suppress(Exception):
                await _answer(writer, 500, b"the metrics could not be rendered\n")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> str:
    """The request line; the headers are read and ignored."""
    line = (await reader.readuntil(b"\r\n")).decode("latin-1").strip()
    while (await reader.readuntil(b"\r\n")) not in (b"\r\n", b""):
        pass
    return line


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    head_only: bool = False,
) -> None:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Error"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
    )
    if not head_only:
        writer.write(body)
    await writer.drain()
