"""Runs the console in the server's process and event loop (uvicorn on a
socket bound here, so a port in use is a one-line configuration error)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Iterator

import uvicorn

from govex_server.config import ConfigError, Settings

log = logging.getLogger("govex.console")


class _Embedded(uvicorn.Server):
    """uvicorn without its own signal handlers: the server's (app.serve) stop
    everything, the console with it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ConsoleServer:
    """The console's HTTP(S) server: ``start`` binds and serves, ``stop`` ends it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        # Without a configured secret, sessions last as long as the process.
        self.secret = settings.console_secret or secrets.token_urlsafe(32)

    async def start(self, app: object) -> None:
        host, _, port = self._settings.console_listen.rpartition(":")
        host = host.strip("[]")
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(port)))
        except OSError as exc:
            raise ConfigError(
                f"console_listen: cannot listen on {self._settings.console_listen}: "
                f"{exc.strerror or exc}"
            ) from None
        self.port = int(sock.getsockname()[1])
        tls = self._settings.tls
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            log_config=None,
            access_log=False,
            lifespan="off",
            # Live pages' event streams end with the event bus at shutdown;
            # a connection that does not is cut after this, not waited for.
            timeout_graceful_shutdown=2,
            ssl_certfile=self._settings.tls_cert_file if tls else None,
            ssl_keyfile=self._settings.tls_key_file if tls else None,
        )
        self._server = _Embedded(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="console")
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            raise ConfigError(f"console_listen: the console did not start on {host}:{port}")
        scheme = "https" if tls else "http"
        log.info("console on %s://%s:%d/", scheme, host, self.port)
        if not self._settings.console_secret:
            log.info("console_secret is not set: sessions end when the server restarts")

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
