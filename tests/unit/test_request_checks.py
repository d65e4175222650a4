"""The front door's text and time checks: the yes/no check made per message
type says no exactly when the walk that names the field would refuse, for
every message of the contract filled at random (NULs in text, times out of
protobuf's ranges, nested and repeated messages)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pool, duration_pb2, message_factory, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import govex.controls.v1.freeze_pb2
import govex.execution.v1.execution_service_pb2
import govex.governance.v1.governance_service_pb2
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from govex_server.api import request_checks
from govex_server.api.request_checks import (
    MAX_DURATION_SECONDS,
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    check_request,
)
from govex_server.domain.errors import GovexError

FILES = (
    govex.governance.v1.governance_service_pb2,
    govex.execution.v1.execution_service_pb2,
    govex.controls.v1.freeze_pb2,
)


def _types() -> list[Any]:
    """Every message type of the contract reachable from its service files
    (requests, responses and what they hold)."""
    pool = descriptor_pool.Default()
    seen: dict[str, Any] = {}

    def visit(descriptor: Any) -> None:
        if descriptor.full_name in seen or descriptor.GetOptions().map_entry:
            return
        seen[descriptor.full_name] = descriptor
        for field in descriptor.fields:
            if field.message_type is not None:
                visit(field.message_type)

    for module in FILES:
        for name in module.DESCRIPTOR.message_types_by_name:
            visit(pool.FindMessageTypeByName(f"{module.DESCRIPTOR.package}.{name}"))
    return sorted(
        (d for d in seen.values() if d.full_name.startswith("govex.")),
        key=lambda d: d.full_name,
    )


TYPES = _types()
TEXTS = st.sampled_from(["", "a", "BTC", "a\x00b", "\x00"])
SECONDS = st.sampled_from(
    [0, 1_780_000_000, MIN_TIMESTAMP_SECONDS - 1, MAX_TIMESTAMP_SECONDS + 1, -5, 2**40]
)
DURATION_SECONDS = st.sampled_from([0, 600, -600, MAX_DURATION_SECONDS + 1, 10**14])
NANOS = st.sampled_from([0, 5, -5, 999_999_999, 1_000_000_000, -1_000_000_000])


def _fill(data: st.DataObject, message: Message, depth: int) -> None:
    for field in message.DESCRIPTOR.fields:
        if not data.draw(st.booleans()):
            continue
        name = field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                getattr(message, name).extend(data.draw(st.lists(TEXTS, max_size=3)))
            else:
                setattr(message, name, data.draw(TEXTS))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < 4:
            inner: Any = field.message_type
            if inner.GetOptions().map_entry:
                continue
            count = data.draw(st.integers(0, 2)) if field.is_repeated else 1
            for _ in range(count):
                sub = getattr(message, name).add() if field.is_repeated else getattr(message, name)
                if inner.full_name == "google.protobuf.Timestamp":
                    sub.seconds, sub.nanos = data.draw(SECONDS), data.draw(NANOS)
                elif inner.full_name == "google.protobuf.Duration":
                    sub.seconds, sub.nanos = data.draw(DURATION_SECONDS), data.draw(NANOS)
                else:
                    sub.SetInParent()
                    _fill(data, sub, depth + 1)


def _walk_refuses(message: Message) -> str | None:
    try:
        request_checks._walk(message, "")
    except GovexError as error:
        return error.message
    return None


CHECKED = [d for d in TYPES if request_checks._needs_walk(d)]


@pytest.mark.parametrize("descriptor", CHECKED, ids=[d.name for d in CHECKED])
@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_the_quick_check_refuses_exactly_what_the_walk_refuses(
    descriptor: Any, data: st.DataObject
) -> None:
    message = message_factory.GetMessageClass(descriptor)()
    _fill(data, message, 0)
    fine = request_checks._fine_of(descriptor)
    refused = _walk_refuses(message)
    assert (fine is None or fine(message)) == (refused is None), (message, refused)


def _refused_field(message: Message) -> list[str]:
    with pytest.raises(GovexError) as caught:
        check_request(message)
    return [v.field for v in caught.value.field_violations]


def test_a_refusal_names_the_field_as_the_walk_does() -> None:
    cases: list[tuple[Message, str]] = [
        (gov.ProposePlanRequest(reason="a\x00b"), "reason"),
        (
            gov.ProposePlanRequest(
                targets=[
                    plan_pb2.TargetWeight(asset="BTC"),
                    plan_pb2.TargetWeight(asset="E\x00TH"),
                ]
            ),
            "targets[1].asset",
        ),
        (
            gov.FreezeRequest(ttl=duration_pb2.Duration(seconds=600, nanos=-5)),
            "ttl",
        ),
        (
            gov.FreezeRequest(expire_time=timestamp_pb2.Timestamp(seconds=2**40)),
            "expire_time",
        ),
    ]
    for message, field in cases:
        assert _refused_field(message) == [field]


def test_a_message_without_text_or_times_is_not_looked_into() -> None:
    assert request_checks._fine_of(timestamp_pb2.Timestamp.DESCRIPTOR) is not None
    plain = [d for d in TYPES if not request_checks._needs_walk(d)]
    assert plain, "the contract has messages with neither text nor times"
    assert all(request_checks._fine_of(d) is None for d in plain)
