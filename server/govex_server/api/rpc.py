"""How servicer methods are written: reads get the principal, mutations get
the call (principal, idempotency key) and return the service's result, which
one ``respond`` function turns into the response sent now and the response
stored for a repeat of the request_id. Authentication, roles, replay, limits
and error statuses are the interceptor's (api/interceptor.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from govex_server.api.interceptor import current_call
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.principals import Principal
from govex_server.services.recorder import Call

Context = grpc.aio.ServicerContext[Any, Any]
H = TypeVar("H")
Req = TypeVar("Req", bound=Message)
Item = TypeVar("Item")
Reply = TypeVar("Reply")  # a response message, or its pre-serialized bytes


def unary(
    fn: Callable[[H, Req, Principal], Awaitable[Reply]],
) -> Callable[[H, Req, Context], Coroutine[Any, Any, Reply]]:
    """A read: ``async def Method(self, request, principal) -> response``."""

    @functools.wraps(fn)
    async def handler(self: H, request: Req, context: Context) -> Reply:
        return await fn(self, request, current_call().principal)

    return handler


def mutation(
    respond: Callable[[Any, Any], Message],
) -> Callable[
    [Callable[[H, Req, Call], Awaitable[Any]]],
    Callable[[H, Req, Context], Coroutine[Any, Any, Any]],
]:
    """A mutation: ``async def Method(self, request, call) -> result`` whose
    service records ``call`` in its unit of work; ``respond(self, result)``
    makes the response, now and for replays."""

    def wrap(
        fn: Callable[[H, Req, Call], Awaitable[Any]],
    ) -> Callable[[H, Req, Context], Coroutine[Any, Any, Any]]:
        @functools.wraps(fn)
        async def handler(self: H, request: Req, context: Context) -> Any:
            call = current_call()
            # The response stored for replays (built in the unit of work) is
            # the one sent: built once, and a repeat gets exactly it.
            stored: list[tuple[Any, Message]] = []

            def serialize(result: Any) -> bytes:
                message = respond(self, result)
                stored.append((result, message))
                return message.SerializeToString()

            call.respond = serialize
            result = await fn(self, request, call)
            for recorded, message in reversed(stored):
                if recorded is result:
                    return message
            return respond(self, result)

        return handler

    return wrap


def stream(
    fn: Callable[[H, Req, Principal, Context], AsyncIterator[Item]],
) -> Callable[[H, Req, Context], AsyncIterator[Item]]:
    """A stream: ``async def Watch(self, request, principal, context)``."""

    @functools.wraps(fn)
    async def handler(self: H, request: Req, context: Context) -> AsyncIterator[Item]:
        async for item in fn(self, request, current_call().principal, context):
            yield item

    return handler


def not_built(rpc: str, issue: str) -> GovexError:
    """UNIMPLEMENTED, for contract RPCs whose behaviour is not built yet."""
    return GovexError(
        Category.UNIMPLEMENTED,
        "NOT_IMPLEMENTED",
        f"{rpc} is part of the v1 contract but not built yet ({issue})",
        metadata={"rpc": rpc},
    )
