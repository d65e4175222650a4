"""One error type for every failed call, with the decoded AIP-193 details."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class GovexRpcError(Exception):
    """A non-OK status from govex, decoded.

    ``reason`` and ``metadata`` come from the ErrorInfo; ``field_violations``
    from BadRequest; ``precondition_violations`` from PreconditionFailure;
    ``retry_delay`` from RetryInfo.
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: list[tuple[str, str]] = field(default_factory=list)
    precondition_violations: list[tuple[str, str, str]] = field(default_factory=list)
    retry_delay: timedelta | None = None
    resource_name: str = ""

    def __post_init__(self) -> None:
        super().__init__(f"{self.code.name} {self.reason}: {self.message}")

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    @property
    def fields(self) -> list[str]:
        """The names of the offending request fields."""
        return [name for name, _ in self.field_violations]

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> GovexRpcError:
        """Decodes a grpc (sync or aio) RpcError."""
        code: grpc.StatusCode = error.code()
        message: str = error.details() or ""
        trailers: Any = error.trailing_metadata() or ()
        result = cls(code, message)
        for item in trailers:
            key, value = item[0], item[1]
            if key == DETAILS_KEY and isinstance(value, bytes):
                result._decode(status_pb2.Status.FromString(value))
        return result

    def _decode(self, status: status_pb2.Status) -> None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            pre = error_details_pb2.PreconditionFailure()
            retry = error_details_pb2.RetryInfo()
            resource = error_details_pb2.ResourceInfo()
            if detail.Unpack(info):
                self.reason, self.domain = info.reason, info.domain
                self.metadata = dict(info.metadata)
            elif detail.Unpack(bad):
                self.field_violations = [(v.field, v.description) for v in bad.field_violations]
            elif detail.Unpack(pre):
                self.precondition_violations = [
                    (v.type, v.subject, v.description) for v in pre.violations
                ]
            elif detail.Unpack(retry):
                self.retry_delay = retry.retry_delay.ToTimedelta()
            elif detail.Unpack(resource):
                self.resource_name = resource.resource_name
