"""A fake HTTP transport for ccxt: an object with aiohttp's session methods
that answers from a handler, so real ccxt exchange classes run offline with
their own signing, parsing and error mapping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp

Handler = Callable[[str, str, dict[str, str]], tuple[int, Any, dict[str, str]]]


class FakeResponse:
    """What ccxt reads from an aiohttp response."""

    def __init__(self, status: int, body: str, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = "OK" if status < 400 else "Error"
        self.headers = {"Content-Type": "application/json", **headers}
        self.content = body.encode()
        self._body = body

    async def text(self, errors: str = "strict") -> str:
        return self._body

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> bool:
        return False


class FakeSession:
    """Routes every request to ``handler(method, path, params)``; a handler
    may raise ``asyncio.TimeoutError`` or ``aiohttp.ClientConnectionError`` to
    simulate the network failing."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.headers: dict[str, str] = {}
        self.closed = False

    def _request(self, method: str, url: Any, data: Any = None, **_: Any) -> FakeResponse:
        parsed = urlparse(str(url))
        params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        if data:
            text = data.decode()
            try:
                body = json.loads(text)  # JSON bodies (OKX); else form-encoded (Binance)
            except ValueError:
                params.update({k: v[0] for k, v in parse_qs(text).items()})
            else:
                if isinstance(body, list) and body:  # a batch of one (OKX)
                    body = body[0]
                if isinstance(body, dict):
                    params.update({k: str(v) for k, v in body.items()})
        self.requests.append((method, parsed.path, params))
        status, body, headers = self.handler(method, parsed.path, params)
        return FakeResponse(status, body if isinstance(body, str) else json.dumps(body), headers)

    def get(self, url: Any, **kw: Any) -> FakeResponse:
        return self._request("GET", url, **kw)

    def post(self, url: Any, **kw: Any) -> FakeResponse:
        return self._request("POST", url, **kw)

    def delete(self, url: Any, **kw: Any) -> FakeResponse:
        return self._request("DELETE", url, **kw)

    async def close(self) -> None:
        self.closed = True


NETWORK_ERRORS = (asyncio.TimeoutError, aiohttp.ClientConnectionError)
