"""Registers a servicer from its service descriptor, so that chosen streaming
methods can send pre-serialized frames through an identity serializer."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor


def _identity(frame: bytes) -> bytes:
    return frame


def register(
    server: grpc.aio.Server,
    servicer: Any,
    service: ServiceDescriptor,
    preserialized: frozenset[str] = frozenset(),
) -> None:
    """Adds every method of ``service`` implemented by ``servicer``; methods
    named in ``preserialized`` yield ``bytes`` that are sent as they are."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        serialize = _identity if method.name in preserialized else response_type.SerializeToString
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=request_type.FromString,
            response_serializer=serialize,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
