"""Checks every request gets before any handler sees it: text without NUL
characters (PostgreSQL refuses them, SQLite would store them) and Timestamps
and Durations inside protobuf's own ranges, so that no handler meets an
OverflowError or a negative nanos field. Ranges that mean something to the
domain (a freeze's TTL) are the handlers' to check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from govex_server.domain.errors import invalid_field

# google/protobuf/timestamp.proto and duration.proto.
MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years
_NANOS = 1_000_000_000

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
# Message types that hold no text and no time: skipped without a walk.
_PLAIN: dict[Any, bool] = {}


# Per message type: a yes/no check made once for the type (None: nothing in
# it to check). A request that passes it (nearly all) is never walked: the
# walk that names the offending field (ListFields, a path per field) cost
# ProposePlan's small request some 13 us on every call.
Fine = Callable[[Any], bool]
_FINE: dict[Any, Fine | None] = {}


def check_request(message: Message) -> None:
    """INVALID_ARGUMENT naming the first offending field, if any."""
    fine = _fine_of(message.DESCRIPTOR)
    if fine is None or fine(message):
        return
    _walk(message, "")


def _needs_walk(descriptor: Any) -> bool:
    known = _PLAIN.get(descriptor)
    if known is None:
        _PLAIN[descriptor] = False  # breaks recursion through self-reference
        known = any(
            f.type == _STRING
            or (f.type == _MESSAGE and (_is_time(f.message_type) or _needs_walk(f.message_type)))
            for f in descriptor.fields
        )
        _PLAIN[descriptor] = known
    return known


def _is_time(descriptor: Any) -> bool:
    return descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration")


def _fine_of(descriptor: Any) -> Fine | None:
    try:
        return _FINE[descriptor]
    except KeyError:
        pass
    fine: Fine | None
    if descriptor.full_name == "google.protobuf.Timestamp":
        fine = _timestamp_fine
    elif descriptor.full_name == "google.protobuf.Duration":
        fine = _duration_fine
    elif _needs_walk(descriptor):
        fine = _compiled(descriptor)
    else:
        fine = None
    _FINE[descriptor] = fine
    return fine


def _compiled(descriptor: Any) -> Fine:
    """The yes/no check of one message type: what the walk below looks at
    (text, times, and the messages that hold them), without a path."""
    steps: list[Fine] = []
    for field in descriptor.fields:
        if field.type == _STRING:
            steps.append(_text_fine(field.name, field.is_repeated))
        elif field.type == _MESSAGE and field.message_type is not None:
            inner = field.message_type
            if inner.GetOptions().map_entry:
                steps.append(_map_fine(field.name))
            elif _is_time(inner) or _needs_walk(inner):
                steps.append(_message_fine(field.name, field.is_repeated, inner))

    def fine(message: Any) -> bool:
        for step in steps:  # noqa: SIM110 - a loop: no generator made per message
            if not step(message):
                return False
        return True

    return fine


def _text_fine(name: str, repeated: bool) -> Fine:
    if repeated:
        return lambda message: not any("\x00" in text for text in getattr(message, name))
    return lambda message: "\x00" not in getattr(message, name)


def _message_fine(name: str, repeated: bool, inner: Any) -> Fine:
    # The inner type's check is looked up when it runs: a type may contain
    # itself, and its check is not made yet while its own is being made.
    if repeated:

        def items(message: Any) -> bool:
            values = getattr(message, name)
            fine = _fine_of(inner) if values else None
            return fine is None or all(fine(item) for item in values)

        return items

    def one(message: Any) -> bool:
        # An unset message is never looked into (nor its default's defaults).
        if not message.HasField(name):
            return True
        fine = _fine_of(inner)
        return fine is None or fine(getattr(message, name))

    return one


def _map_fine(name: str) -> Fine:
    def entries(message: Any) -> bool:
        for key, item in getattr(message, name).items():
            if isinstance(key, str) and "\x00" in key:
                return False
            if isinstance(item, Message):
                fine = _fine_of(item.DESCRIPTOR)
                if fine is not None and not fine(item):
                    return False
            elif isinstance(item, str) and "\x00" in item:
                return False
        return True

    return entries


def _timestamp_fine(message: Any) -> bool:
    seconds: int = message.seconds
    nanos: int = message.nanos
    return MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS and 0 <= nanos < _NANOS


def _duration_fine(message: Any) -> bool:
    seconds: int = message.seconds
    nanos: int = message.nanos
    return (
        -MAX_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS
        and -_NANOS < nanos < _NANOS
        and not (seconds > 0 and nanos < 0)
        and not (seconds < 0 and nanos > 0)
    )


def _walk(message: Message, prefix: str) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        _timestamp(message, prefix)
        return
    if descriptor.full_name == "google.protobuf.Duration":
        _duration(message, prefix)
        return
    if not _needs_walk(descriptor):
        return
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        repeated = field.is_repeated
        if field.type == _STRING:
            for index, text in enumerate(value if repeated else (value,)):
                if "\x00" in text:
                    where = f"{path}[{index}]" if repeated else path
                    raise invalid_field(where, "must not contain a NUL character")
        elif field.type == _MESSAGE and field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if isinstance(key, str) and "\x00" in key:
                        raise invalid_field(path, "a key contains a NUL character")
                    if isinstance(item, Message):
                        _walk(item, f"{path}[{key!r}].")
                    elif isinstance(item, str) and "\x00" in item:
                        raise invalid_field(f"{path}[{key!r}]", "must not contain a NUL character")
            elif repeated:
                for index, item in enumerate(value):
                    _walk(item, f"{path}[{index}].")
            else:
                _walk(value, f"{path}.")


def _timestamp(message: Message, prefix: str) -> None:
    field = prefix.rstrip(".")
    seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        raise invalid_field(field, "a Timestamp must lie between 0001-01-01 and 9999-12-31")
    if not 0 <= nanos < _NANOS:
        raise invalid_field(field, "a Timestamp's nanos must be 0 to 999,999,999")


def _duration(message: Message, prefix: str) -> None:
    field = prefix.rstrip(".")
    seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
    if not -MAX_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise invalid_field(field, "a Duration must lie within ±10,000 years")
    if not -_NANOS < nanos < _NANOS:
        raise invalid_field(field, "a Duration's nanos must be -999,999,999 to 999,999,999")
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        raise invalid_field(field, "a Duration's seconds and nanos must have the same sign")
