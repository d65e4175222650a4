"""What every RPC handler does the same way: authenticate and authorize,
map refusals to statuses, turn surprises into INTERNAL (never UNKNOWN), and
make mutations idempotent by request_id."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from govex_server.api.auth import Authenticator
from govex_server.api.errors import internal_status, status_for
from govex_server.domain.errors import Category, GovexError, failed_precondition, invalid_field
from govex_server.domain.principals import Principal
from govex_server.services.governance import GovernanceService
from govex_server.services.idempotency import Idempotency

log = logging.getLogger("govex.api")

Context = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Item = TypeVar("Item")
Result = TypeVar("Result")
Reply = TypeVar("Reply")  # a response message, or its pre-serialized bytes
_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")


class Host(Protocol):
    """A servicer: it has an authenticator."""

    auth: Authenticator


H = TypeVar("H", bound=Host)


async def _abort(context: Context, rpc: str, error: BaseException) -> None:
    if isinstance(error, GovexError):
        code, message, details = status_for(error)
        log.info("%s refused: %s %s", rpc, code.name, error.reason)
    else:
        log.error("%s failed unexpectedly", rpc, exc_info=error)
        code, message, details = internal_status()
    await context.abort(code, message, trailing_metadata=(("grpc-status-details-bin", details),))


def unary(
    rpc: str,
) -> Callable[
    [Callable[[H, Req, Principal], Awaitable[Reply]]],
    Callable[[H, Req, Context], Coroutine[Any, Any, Reply]],
]:
    """Wraps ``async def Method(self, request, principal) -> response``."""

    def wrap(
        fn: Callable[[H, Req, Principal], Awaitable[Reply]],
    ) -> Callable[[H, Req, Context], Coroutine[Any, Any, Reply]]:
        @functools.wraps(fn)
        async def handler(self: H, request: Req, context: Context) -> Reply:
            try:
                principal = self.auth.authorize(rpc, context.invocation_metadata())
                return await fn(self, request, principal)
            except Exception as error:
                await _abort(context, rpc, error)
                raise  # abort raised already; this keeps the type checker honest

        return handler

    return wrap


def stream(
    rpc: str,
) -> Callable[
    [Callable[[H, Req, Principal, Context], AsyncIterator[Item]]],
    Callable[[H, Req, Context], AsyncIterator[Item]],
]:
    """Wraps ``async def Watch(self, request, principal, context)`` generators."""

    def wrap(
        fn: Callable[[H, Req, Principal, Context], AsyncIterator[Item]],
    ) -> Callable[[H, Req, Context], AsyncIterator[Item]]:
        @functools.wraps(fn)
        async def handler(self: H, request: Req, context: Context) -> AsyncIterator[Item]:
            try:
                principal = self.auth.authorize(rpc, context.invocation_metadata())
                async for item in fn(self, request, principal, context):
                    yield item
            except Exception as error:
                await _abort(context, rpc, error)
                raise

        return handler

    return wrap


def not_built(rpc: str, issue: str) -> GovexError:
    """UNIMPLEMENTED, for contract RPCs whose behaviour is not built yet."""
    return GovexError(
        Category.UNIMPLEMENTED,
        "NOT_IMPLEMENTED",
        f"{rpc} is part of the v1 contract but not built yet ({issue})",
        metadata={"rpc": rpc},
    )


def fingerprint(request: Message) -> str:
    """A hash of the request's payload without its request_id."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


async def idempotent(
    governance: GovernanceService,
    principal: Principal,
    rpc: str,
    request: Message,
    response_type: type[Resp],
    call: Callable[[Idempotency | None], Awaitable[Result]],
    to_response: Callable[[Result], Resp],
) -> Resp:
    """Runs a mutation at most once per (principal, rpc, request_id): a repeat
    with the same payload gets the first response back, a repeat with another
    payload is FAILED_PRECONDITION REQUEST_ID_REUSED (AIP-155)."""
    request_id: str = getattr(request, "request_id")  # noqa: B009 - every mutation has one
    if not request_id:
        return to_response(await call(None))
    if not _REQUEST_ID_RE.match(request_id):
        raise invalid_field("request_id", "1 to 64 printable ASCII characters, no spaces")
    digest = fingerprint(request)

    async def replay() -> Resp | None:
        stored = await governance.replay(principal, rpc, request_id)
        if stored is None:
            return None
        stored_digest, payload = stored
        if stored_digest != digest:
            raise failed_precondition(
                "REQUEST_ID_REUSED",
                request_id,
                f"request_id {request_id!r} was already used by {principal.name} for "
                f"{rpc} with another payload",
            )
        return response_type.FromString(payload)

    first = await replay()
    if first is not None:
        return first
    encode: Callable[[Any], bytes] = lambda result: to_response(result).SerializeToString()  # noqa: E731
    try:
        return to_response(await call(Idempotency(rpc, request_id, digest, encode)))
    except GovexError as error:
        # A concurrent twin with the same key may have committed first.
        if error.category is Category.ABORTED and error.reason == "CONFLICT":
            again = await replay()
            if again is not None:
                return again
        raise
