"""Server reflection that keeps the contract's comments.

grpcio-reflection answers from the descriptor pool, whose ``CopyToProto``
drops ``source_code_info``: grpcurl users without the repository would see
no documentation. The descriptor set generated with the code (``make
generate`` writes ``govex.protoset`` with ``--include_source_info``) holds the
files as protoc wrote them; this servicer answers with those bytes and falls
back to the pool for any file the set does not hold."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha._async import ReflectionServicer

import govex.execution.v1.execution_pb2 as _anchor

# generated/govex/execution/v1/execution_pb2.py -> generated/govex/govex.protoset
PROTOSET = Path(_anchor.__file__).parents[2] / "govex.protoset"


def protoset_bytes() -> bytes:
    """The descriptor set with comments, as generated."""
    return PROTOSET.read_bytes()


def documented_files(raw: bytes) -> dict[str, bytes]:
    """Each file of a descriptor set, serialized with its source info.

    protoc fills in every field's default ``json_name`` (lowerCamelCase);
    the pool's copy leaves it empty, and grpcurl then prints the proto field
    names. It is cleared here so that adding the comments changes nothing
    else in what reflection clients see (their JSON keeps ``active_plan``)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(raw)
    for file in files.file:
        for message in _messages(file.message_type):
            for field in message.field:
                field.ClearField("json_name")
    return {f.name: f.SerializeToString() for f in files.file}


def _messages(
    messages: Iterable[descriptor_pb2.DescriptorProto],
) -> Iterator[descriptor_pb2.DescriptorProto]:
    for message in messages:
        yield message
        yield from _messages(message.nested_type)


def _not_found(request: Any) -> rpb.ServerReflectionResponse:
    return rpb.ServerReflectionResponse(
        error_response=rpb.ErrorResponse(error_code=5, error_message=b"not found"),
        original_request=request,
    )


class DocumentedReflection(ReflectionServicer):  # type: ignore[misc]
    """grpc.reflection.v1alpha with the comments of the govex contract."""

    def __init__(self, service_names: tuple[str, ...], documented: Mapping[str, bytes]) -> None:
        super().__init__(service_names)
        self._documented = dict(documented)

    def _respond(self, descriptor: FileDescriptor, request: Any) -> rpb.ServerReflectionResponse:
        files: dict[str, FileDescriptor] = {}
        pending = [descriptor]
        while pending:
            current = pending.pop()
            if current.name not in files:
                files[current.name] = current
                pending.extend(current.dependencies)
        serialized = []
        for name, file in files.items():
            raw = self._documented.get(name)
            if raw is None:
                proto = descriptor_pb2.FileDescriptorProto()
                file.CopyToProto(proto)
                raw = proto.SerializeToString()
            serialized.append(raw)
        return rpb.ServerReflectionResponse(
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=serialized),
            original_request=request,
        )

    def _file_by_filename(self, request: Any, filename: str) -> rpb.ServerReflectionResponse:
        try:
            return self._respond(self._pool.FindFileByName(filename), request)
        except KeyError:
            return _not_found(request)

    def _file_containing_symbol(self, request: Any, symbol: str) -> rpb.ServerReflectionResponse:
        try:
            return self._respond(self._pool.FindFileContainingSymbol(symbol), request)
        except KeyError:
            return _not_found(request)

    def _file_containing_extension(
        self, request: Any, containing_type: str, extension_number: int
    ) -> rpb.ServerReflectionResponse:
        try:
            message = self._pool.FindMessageTypeByName(containing_type)
            extension = self._pool.FindExtensionByNumber(message, extension_number)
            file = self._pool.FindFileContainingSymbol(extension.full_name)
        except KeyError:
            return _not_found(request)
        return self._respond(file, request)
