"""The one place every govex RPC passes through (a gRPC server interceptor).

In order: authenticate from metadata or the client certificate (before the
body is parsed: an unauthenticated caller costs no decoding), check the RPC's
roles (domain/rpcs.py), parse the body (a body that does not decode is
INVALID_ARGUMENT, not UNKNOWN), check text and times, count streams against
their limits, replay the first response of a repeated request_id, and map
every refusal to its status (an unexpected exception to INTERNAL with one
log line). A mutation that answers OK without having written its audit record
is a bug that this refuses to hide."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from govex_server import logs
from govex_server.api.auth import AuthContext, Authenticator, authorize
from govex_server.api.errors import internal_status, status_for
from govex_server.api.request_checks import check_request
from govex_server.api.stream_limits import StreamLimits
from govex_server.domain.errors import Category, GovexError, failed_precondition, invalid_field
from govex_server.domain.rpcs import RPCS, RpcSpec, short_name
from govex_server.observability.metrics import Metrics
from govex_server.services.idempotency import IdempotencyKeys
from govex_server.services.recorder import Call

log = logging.getLogger("govex.api")

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
_REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
_CALL: ContextVar[Call | None] = ContextVar("govex_call", default=None)


def current_call() -> Call:
    """The call being served (set by the interceptor for this call's task)."""
    call = _CALL.get()
    if call is None:
        raise RuntimeError("no govex call: the server interceptor is not installed")
    return call


def fingerprint(request: Message) -> str:
    """A hash of the request's payload without its request_id."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


class GovexInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the handler of every govex RPC once, then serves the wrapper."""

    def __init__(
        self,
        auth: Authenticator,
        keys: IdempotencyKeys,
        limits: StreamLimits,
        metrics: Metrics | None = None,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._limits = limits
        self._metrics = metrics or Metrics()
        self._handlers: dict[str, Handler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = handler_call_details.method
        if method in self._handlers:
            return self._handlers[method]
        handler = await continuation(handler_call_details)
        rpc = method.lstrip("/")
        if handler is None or not rpc.startswith("govex."):
            return handler  # health, reflection, or unknown (UNIMPLEMENTED)
        spec = RPCS.get(rpc)
        # An RPC missing from the table cannot be called: fail closed.
        wrapped = _unlisted(rpc) if spec is None else self._wrap(rpc, spec, handler)
        self._handlers[method] = wrapped
        return wrapped

    # ------------------------------------------------------------- wrappers

    def _wrap(self, rpc: str, spec: RpcSpec, handler: Handler) -> Handler:
        name = short_name(rpc)
        parse = handler.request_deserializer
        assert parse is not None, rpc
        if handler.unary_stream is not None:
            return self._wrap_stream(name, spec, parse, handler)
        behavior: Any = handler.unary_unary
        assert behavior is not None, f"{rpc}: only unary and server-streaming RPCs exist"
        service, _, method = rpc.rpartition("/")
        output = descriptor_pool.Default().FindMethodByName(f"{service}.{method}").output_type
        response_type: type[Message] = message_factory.GetMessageClass(output)
        # The labelled metric children of this RPC, looked up once: labels()
        # takes a lock and builds a key on every call.
        answered_ok = self._metrics.rpc_requests.labels(name, grpc.StatusCode.OK.name)
        seconds = self._metrics.rpc_seconds.labels(name)

        async def unary(raw: bytes, context: Context) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            call: Call | None = None
            try:
                call, request = self._admit(name, spec, parse, raw, context)
                _CALL.set(call)
                if call.request_id:  # rpc and principal are bound already
                    _bind_log_context(call)
                if not spec.mutating:
                    return await behavior(request, context)
                response = await self._mutate(call, request, context, behavior, response_type)
                _log_mutation(call, "OK")
                return response
            except grpc.aio.AbortError:
                code = grpc.StatusCode.UNKNOWN  # aborted by the handler itself
                raise
            except Exception as error:
                code = _code_of(error)
                await _abort(context, name, error, call if spec.mutating else None)
            finally:
                if code is grpc.StatusCode.OK:
                    answered_ok.inc()
                else:
                    self._metrics.rpc_requests.labels(name, code.name).inc()
                seconds.observe(time.perf_counter() - started)

        return handler._replace(unary_unary=unary, request_deserializer=None)  # type: ignore[attr-defined,no-any-return]

    def _wrap_stream(
        self, name: str, spec: RpcSpec, parse: Callable[[bytes], Any], handler: Handler
    ) -> Handler:
        behavior: Any = handler.unary_stream
        assert behavior is not None

        async def streaming(raw: bytes, context: Context) -> AsyncIterator[Any]:
            code = grpc.StatusCode.OK
            try:
                try:
                    call, request = self._admit(name, spec, parse, raw, context)
                    _bind_log_context(call)
                    peer = context.peer()
                    self._limits.acquire(peer, call.principal.name)
                except Exception as error:
                    code = _code_of(error)
                    await _abort(context, name, error)
                    return
                _CALL.set(call)
                try:
                    async for item in behavior(request, context):
                        yield item
                except grpc.aio.AbortError:
                    code = grpc.StatusCode.UNKNOWN
                    raise
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED  # the client went away
                    raise
                except Exception as error:
                    code = _code_of(error)
                    await _abort(context, name, error)
                finally:
                    self._limits.release(peer, call.principal.name)
            finally:
                self._metrics.rpc_requests.labels(name, code.name).inc()

        return handler._replace(unary_stream=streaming, request_deserializer=None)  # type: ignore[attr-defined,no-any-return]

    # ------------------------------------------------------------ the steps

    def _admit(
        self,
        name: str,
        spec: RpcSpec,
        parse: Callable[[bytes], Any],
        raw: bytes,
        context: Context,
    ) -> tuple[Call, Message]:
        """Who is calling, may they, and what did they send."""
        principal = self._auth.authenticate(context.invocation_metadata(), lambda: _peer(context))
        logs.bind(rpc=name, principal=principal.name)  # a refusal names who was refused
        authorize(principal, name, spec)
        try:
            request: Message = parse(raw)
        except (DecodeError, RuntimeWarning, ValueError) as exc:
            log.debug("%s: undecodable body from %s: %s", name, principal.name, exc)
            raise GovexError(
                Category.INVALID_ARGUMENT,
                "UNDECODABLE_REQUEST",
                f"the request body is not a valid {name} request message",
            ) from None
        check_request(request)
        call = Call(principal, name)
        if spec.mutating:
            call.request_id = getattr(request, "request_id")  # noqa: B009 - every mutation has one
            if call.request_id:
                if not _REQUEST_ID_RE.match(call.request_id):
                    raise invalid_field(
                        "request_id", "1 to 64 printable ASCII characters, no spaces"
                    )
                call.fingerprint = fingerprint(request)
        return call, request

    async def _mutate(
        self,
        call: Call,
        request: Message,
        context: Context,
        behavior: Callable[[Any, Context], Awaitable[Any]],
        response_type: type[Message],
    ) -> Any:
        if call.request_id:
            first = await self._replay(call, response_type)
            if first is not None:
                call.replayed = True
                return first
        try:
            response = await behavior(request, context)
        except GovexError:
            # A concurrent twin with the same key may have committed first
            # (our write then conflicted, or found the work done).
            if call.request_id:
                again = await self._replay(call, response_type)
                if again is not None:
                    call.replayed = True
                    return again
            raise
        if not call.recorded:
            raise RuntimeError(f"{call.rpc} answered OK without writing its audit record")
        return response

    async def _replay(self, call: Call, response_type: type[Message]) -> Message | None:
        stored = await self._keys.first_response(call.principal.name, call.rpc, call.request_id)
        if stored is None:
            return None
        digest, payload = stored
        if digest != call.fingerprint:
            raise failed_precondition(
                "REQUEST_ID_REUSED",
                call.request_id,
                f"request_id {call.request_id!r} was already used by {call.principal.name} "
                f"for {call.rpc} with another payload",
            )
        response = response_type.FromString(payload)
        call.resource = _resource_of(response)
        return response


def _peer(context: Context) -> AuthContext | None:
    auth = context.auth_context()
    return {k: list(v) for k, v in auth.items()} if auth.get("x509_common_name") else None


def _code_of(error: BaseException) -> grpc.StatusCode:
    return status_for(error)[0] if isinstance(error, GovexError) else grpc.StatusCode.INTERNAL


def _bind_log_context(call: Call) -> None:
    """Every line written while serving this call names it (logs.py)."""
    logs.bind(rpc=call.rpc, principal=call.principal.name, request_id=call.request_id)


def _log_mutation(call: Call, outcome: str, reason: str = "") -> None:
    """The one line a mutation gets: what was changed and how it ended (a
    repeated request_id answered from its first response says so)."""
    fields = {"resource": call.resource, "outcome": outcome, "reason": reason}
    if call.replayed:
        fields["replayed"] = "true"
    log.info(
        "%s %s: %s%s%s",
        call.rpc,
        call.resource or "-",
        outcome,
        f" {reason}" if reason else "",
        " (replayed)" if call.replayed else "",
        extra={"fields": {k: v for k, v in fields.items() if v}},
    )


def _resource_of(response: Message) -> str:
    """The name of the resource a response carries (plan, freeze, ...)."""
    for _, value in response.ListFields():
        name = getattr(value, "name", None)
        if isinstance(value, Message) and isinstance(name, str):
            return name
    return ""


async def _abort(
    context: Context, rpc: str, error: BaseException, mutation: Call | None = None
) -> None:
    """Answers ``error``'s status; a refused mutation gets its one line."""
    if isinstance(error, GovexError):
        code, message, details = status_for(error)
        if mutation is not None:
            mutation.resource = mutation.resource or error.resource_name or ""
            _log_mutation(mutation, code.name, error.reason)
        else:
            log.info(
                "%s refused: %s %s",
                rpc,
                code.name,
                error.reason,
                extra={
                    "fields": {
                        "outcome": code.name,
                        "reason": error.reason,
                        "resource": error.resource_name or "",
                    }
                },
            )
    else:
        log.error(
            "%s failed unexpectedly: %r",
            rpc,
            error,
            exc_info=error,
            extra={"fields": {"outcome": "INTERNAL"}},
        )
        code, message, details = internal_status()
    await context.abort(code, message, trailing_metadata=(("grpc-status-details-bin", details),))


def _unlisted(rpc: str) -> Handler:
    async def refuse(raw: bytes, context: Context) -> None:
        error = GovexError(
            Category.PERMISSION_DENIED,
            "RPC_NOT_LISTED",
            f"{rpc} has no entry in the server's RPC table; nobody may call it",
        )
        await _abort(context, rpc, error)

    return grpc.unary_unary_rpc_method_handler(refuse)
