"""The core of the govex client: where the server is, who is calling, one
deadline per call, retries (retry.py), a request_id on every mutation, and
streams that resume. The typed calls of both services are in governance.py
and execution.py; ``GovexClient`` (client.py) is all of them."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from govex.execution.v1 import execution_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2_grpc
from govex_client.errors import GovexRpcError
from govex_client.retry import STREAM_RESUMED, RetryPolicy

Resp = TypeVar("Resp", bound=Message)
Item = TypeVar("Item", bound=Message)
DEFAULT_TARGET = "127.0.0.1:50051"
log = logging.getLogger("govex_client")


@dataclass(frozen=True)
class ClientConfig:
    """Where govex is, who is calling, and how patiently."""

    target: str = DEFAULT_TARGET
    token: str = ""
    # The deadline of each try of a unary call.
    timeout_seconds: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # TLS: the CA that signed the server's certificate (empty: plaintext),
    # and for mTLS this client's certificate and key (the certificate may
    # name the principal instead of a token).
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """GOVEX_TARGET, GOVEX_TOKEN, GOVEX_TIMEOUT, GOVEX_CA_FILE,
        GOVEX_CERT_FILE, GOVEX_KEY_FILE; ``overrides`` (not None) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "target": env.get("GOVEX_TARGET") or DEFAULT_TARGET,
            "token": env.get("GOVEX_TOKEN", ""),
            "ca_file": env.get("GOVEX_CA_FILE", ""),
            "cert_file": env.get("GOVEX_CERT_FILE", ""),
            "key_file": env.get("GOVEX_KEY_FILE", ""),
        }
        if env.get("GOVEX_TIMEOUT"):
            try:
                values["timeout_seconds"] = float(env["GOVEX_TIMEOUT"])
            except ValueError:
                raise ValueError(f"GOVEX_TIMEOUT {env['GOVEX_TIMEOUT']!r} is not seconds") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def channel(self) -> grpc.aio.Channel:
        """A channel to ``target``: TLS when ``ca_file`` is set."""
        if not self.ca_file:
            if self.cert_file or self.key_file:
                raise ValueError("a client certificate needs ca_file (TLS) too")
            return grpc.aio.insecure_channel(self.target)

        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as file:
                return file.read()

        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        credentials = grpc.ssl_channel_credentials(
            read(self.ca_file), read(self.key_file), read(self.cert_file)
        )
        return grpc.aio.secure_channel(self.target, credentials)


def new_request_id() -> str:
    """A fresh idempotency key (the server honours it for days)."""
    return uuid.uuid4().hex


class ClientCore:
    """The channel, the stubs and the call machinery."""

    def __init__(self, config: ClientConfig, channel: grpc.aio.Channel | None = None) -> None:
        self.config = config
        self.channel = channel or config.channel()
        self.governance = governance_service_pb2_grpc.GovernanceServiceStub(self.channel)
        self.execution = execution_service_pb2_grpc.ExecutionServiceStub(self.channel)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def close(self) -> None:
        """Closes the channel."""
        await self.channel.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata carrying the bearer token (none without one: a
        client certificate then says who is calling)."""
        if not self.config.token:
            return ()
        return (("authorization", f"Bearer {self.config.token}"),)

    async def call(
        self,
        method: Callable[..., Awaitable[Resp]],
        request: Message,
        *,
        deadline: float | None = None,
    ) -> Resp:
        """Calls ``method`` with a deadline (``deadline`` seconds per try, else
        the config's), retrying what retry.py says.
        A mutation (a request with a ``request_id``) gets a fresh one when it
        has none, so that every retry of it is answered once."""
        mutation = "request_id" in request.DESCRIPTOR.fields_by_name
        if mutation and not getattr(request, "request_id"):  # noqa: B009
            setattr(request, "request_id", new_request_id())  # noqa: B010
        policy = self.config.retry
        for attempt in range(policy.attempts):
            try:
                return await method(
                    request,
                    metadata=self.metadata,
                    timeout=deadline or self.config.timeout_seconds,
                )
            except grpc.RpcError as exc:
                error = GovexRpcError.from_rpc_error(exc)
                if attempt == policy.attempts - 1 or not policy.retried(
                    error.code, error.retry_delay
                ):
                    raise error from None
                await self.sleep(policy.delay(attempt, error.retry_delay))
        raise AssertionError("unreachable: the last attempt raises")

    async def resume(
        self,
        open_stream: Callable[[int], AsyncIterable[Item]],
        position: Callable[[Item], tuple[int, bool]],
        after: int,
    ) -> AsyncIterator[Item]:
        """The items of a stream opened after ``after``; when the stream is
        cut (UNAVAILABLE, RESOURCE_EXHAUSTED: a restart, a slow consumer) it
        is opened again after the last position seen, so nothing is missed
        and nothing is seen twice. ``position`` is an item's sequence and
        whether it is an event (a heartbeat's position moves the resume point
        but is never skipped). Gives up after the policy's stream_attempts in
        a row without an item (0: never); other errors are raised at once.
        Each cut is logged (logger ``govex_client``)."""
        failures = 0
        policy = self.config.retry
        while True:
            try:
                async for item in open_stream(after):
                    failures = 0
                    seen, is_event = position(item)
                    if is_event and seen <= after:
                        continue  # already delivered before the cut
                    after = max(after, seen)
                    yield item
                return
            except grpc.RpcError as exc:
                error = GovexRpcError.from_rpc_error(exc)
                failures += 1
                limit = policy.stream_attempts
                if error.code not in STREAM_RESUMED or (limit and failures >= limit):
                    raise error from None
                log.warning("stream cut (%s); resuming after %d", error.code.name, after)
                await self.sleep(policy.delay(min(failures - 1, 8), error.retry_delay))
