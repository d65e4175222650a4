"""Checks every request gets before any handler sees it: text without NUL
characters (PostgreSQL refuses them, SQLite would store them) and Timestamps
and Durations inside protobuf's own ranges, so that no handler meets an
OverflowError or a negative nanos field. Ranges that mean something to the
domain (a freeze's TTL) are the handlers' to check."""

from __future__ import annotations

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


def check_request(message: Message) -> None:
    """INVALID_ARGUMENT naming the first offending field, if any."""
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
