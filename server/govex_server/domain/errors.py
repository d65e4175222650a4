"""Domain errors: every refusal names its reason, never a silent failure.

Each error carries what the API layer needs to build an AIP-193 status: a
category (mapped to a gRPC code by ``api.errors``), an UPPER_SNAKE reason for
``google.rpc.ErrorInfo``, and the structured details that fit the category.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Category(enum.Enum):
    """What kind of refusal this is; the API maps each to one status code."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ABORTED = "ABORTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    UNIMPLEMENTED = "UNIMPLEMENTED"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One failed precondition (google.rpc.PreconditionFailure.Violation)."""

    type: str
    subject: str
    description: str


@dataclass
class GovexError(Exception):
    """A refusal with everything needed to explain it to the caller."""

    category: Category
    reason: str
    message: str
    field_violations: list[FieldViolation] = field(default_factory=list)
    precondition_violations: list[PreconditionViolation] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None
    resource_type: str | None = None
    resource_name: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def invalid_argument(
    violations: list[FieldViolation], reason: str = "INVALID_ARGUMENT"
) -> GovexError:
    """A malformed or out-of-range request, naming every offending field."""
    fields = ", ".join(v.field for v in violations)
    detail = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return GovexError(
        Category.INVALID_ARGUMENT,
        reason,
        f"invalid {fields}: {detail}",
        field_violations=violations,
        metadata={"fields": fields},
    )


def invalid_field(field_name: str, description: str) -> GovexError:
    """A single bad field."""
    return invalid_argument([FieldViolation(field_name, description)])


def not_found(resource_type: str, name: str) -> GovexError:
    """An unknown resource."""
    return GovexError(
        Category.NOT_FOUND,
        "NOT_FOUND",
        f"{name} does not exist",
        resource_type=resource_type,
        resource_name=name,
        metadata={"resource": name},
    )


def etag_mismatch(name: str, current_etag: str) -> GovexError:
    """A write based on a stale read (AIP-154)."""
    return GovexError(
        Category.ABORTED,
        "ETAG_MISMATCH",
        f"{name} changed since it was read; re-read it and retry with the current etag",
        metadata={"currentEtag": current_etag, "resource": name},
        resource_name=name,
    )


def failed_precondition(reason: str, subject: str, description: str, **metadata: str) -> GovexError:
    """A rule of the current state refuses the request."""
    return GovexError(
        Category.FAILED_PRECONDITION,
        reason,
        description,
        precondition_violations=[PreconditionViolation(reason, subject, description)],
        metadata={"subject": subject, **metadata},
    )


def permission_denied(reason: str, description: str, **metadata: str) -> GovexError:
    """The caller is known but may not do this."""
    return GovexError(Category.PERMISSION_DENIED, reason, description, metadata=dict(metadata))
