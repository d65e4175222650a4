"""Domain refusals become AIP-193 statuses with exactly one ErrorInfo."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from govex_server.api.errors import internal_status, status_for
from govex_server.domain.errors import (
    Category,
    GovexError,
    etag_mismatch,
    failed_precondition,
    invalid_field,
    not_found,
)


def decode(details: bytes) -> tuple[status_pb2.Status, list[str]]:
    status = status_pb2.Status.FromString(details)
    return status, [d.TypeName() for d in status.details]


def test_invalid_argument_has_error_info_and_bad_request() -> None:
    code, _, details = status_for(invalid_field("targets[0].asset", "required"))
    status, kinds = decode(details)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert kinds == ["google.rpc.ErrorInfo", "google.rpc.BadRequest"]
    bad = error_details_pb2.BadRequest()
    status.details[1].Unpack(bad)
    assert bad.field_violations[0].field == "targets[0].asset"


def test_stale_etag_carries_the_current_etag() -> None:
    code, _, details = status_for(etag_mismatch("plans/x", 'W/"abc"'))
    status, _ = decode(details)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert code is grpc.StatusCode.ABORTED
    assert (info.reason, info.domain) == ("ETAG_MISMATCH", "govex")
    assert info.metadata["currentEtag"] == 'W/"abc"'


def test_cooldown_carries_retry_info() -> None:
    error = GovexError(Category.FAILED_PRECONDITION, "COOLDOWN", "wait", retry_after_seconds=90.5)
    _, _, details = status_for(error)
    status, kinds = decode(details)
    assert kinds == ["google.rpc.ErrorInfo", "google.rpc.RetryInfo"]
    retry = error_details_pb2.RetryInfo()
    status.details[1].Unpack(retry)
    assert retry.retry_delay.seconds == 90
    assert retry.retry_delay.nanos == 500_000_000


def test_precondition_and_not_found_details() -> None:
    _, _, details = status_for(failed_precondition("PLAN_STATE", "plans/x", "no"))
    assert decode(details)[1] == ["google.rpc.ErrorInfo", "google.rpc.PreconditionFailure"]
    code, _, details = status_for(not_found("govex.io/Plan", "plans/x"))
    assert code is grpc.StatusCode.NOT_FOUND
    assert decode(details)[1] == ["google.rpc.ErrorInfo", "google.rpc.ResourceInfo"]


def test_every_category_maps_to_exactly_one_error_info() -> None:
    for category in Category:
        _, _, details = status_for(GovexError(category, "R", "m"))
        assert decode(details)[1].count("google.rpc.ErrorInfo") == 1


def test_internal_says_nothing_of_the_cause() -> None:
    code, message, details = internal_status()
    assert code is grpc.StatusCode.INTERNAL
    assert "Traceback" not in message
    assert decode(details)[1] == ["google.rpc.ErrorInfo"]
