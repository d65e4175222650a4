"""Domain refusals -> gRPC statuses with AIP-193 details (one ErrorInfo,
plus BadRequest, PreconditionFailure, RetryInfo or ResourceInfo)."""

from __future__ import annotations

import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from govex_server.domain.errors import Category, GovexError

DOMAIN = "govex"

_CODES: dict[Category, grpc.StatusCode] = {
    Category.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Category.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Category.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Category.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Category.ABORTED: grpc.StatusCode.ABORTED,
    Category.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Category.OUT_OF_RANGE: grpc.StatusCode.OUT_OF_RANGE,
    Category.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Category.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Category.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def status_for(error: GovexError) -> tuple[grpc.StatusCode, str, bytes]:
    """The status code, message and serialized ``google.rpc.Status`` (for the
    ``grpc-status-details-bin`` trailer) of ``error``."""
    code = _CODES[error.category]
    status = status_pb2.Status(code=code.value[0], message=error.message)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)
    for key, value in error.metadata.items():
        info.metadata[key] = value
    status.details.append(_pack(info))
    if error.field_violations:
        bad = error_details_pb2.BadRequest()
        for v in error.field_violations:
            bad.field_violations.add(field=v.field, description=v.description)
        status.details.append(_pack(bad))
    if error.precondition_violations:
        pre = error_details_pb2.PreconditionFailure()
        for p in error.precondition_violations:
            pre.violations.add(type=p.type, subject=p.subject, description=p.description)
        status.details.append(_pack(pre))
    if error.retry_after_seconds is not None:
        seconds = max(0.0, error.retry_after_seconds)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        status.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if error.resource_name is not None and error.category is Category.NOT_FOUND:
        status.details.append(
            _pack(
                error_details_pb2.ResourceInfo(
                    resource_type=error.resource_type or "",
                    resource_name=error.resource_name,
                    description=error.message,
                )
            )
        )
    return code, error.message, status.SerializeToString()


def internal_status() -> tuple[grpc.StatusCode, str, bytes]:
    """INTERNAL with an ErrorInfo and no stack trace: details go to the log."""
    message = "internal error; the server logged the details"
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=message)
    status.details.append(_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)))
    return grpc.StatusCode.INTERNAL, message, status.SerializeToString()
