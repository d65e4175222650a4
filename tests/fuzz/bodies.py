"""Request bodies for fuzzing every RPC of the contract: random messages
built from the descriptors (extreme numbers, unknown enum values, NUL and
huge strings, Timestamps and Durations out of range or with bad nanos) and
corrupt bytes (random, truncated, bit-flipped), with random identities."""

from __future__ import annotations

import random
from dataclasses import dataclass

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from govex.execution.v1 import execution_service_pb2
from govex.governance.v1 import governance_service_pb2

FD = FieldDescriptor
SERVICES = (
    governance_service_pb2.DESCRIPTOR.services_by_name["GovernanceService"],
    execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
)
# Who calls: every role, a wrong token, and nobody.
IDENTITIES = ("carol", "dana", "model-7", "alice", "bob", "victor", "audrey", "wrong", "")

_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
_STRINGS = (
    "",
    "BTC",
    "ETH",
    "USDT",
    "plans/01JZ0000000000000000000000",
    "executions/x",
    "exchanges/paper",
    "exchanges/binance-test",
    "freezes/f",
    "binance",
    "kraken",
    "paper",
    'W/"1"',
    "nul\x00inside",
    "\x00",
    "ünïcødé ✓ 𝔘",
    "a" * 5000,
    "../../etc/passwd",
    "' OR 1=1 --",
)


@dataclass(frozen=True)
class Call:
    """One call to make: which method, as whom, with which bytes."""

    method: MethodDescriptor
    identity: str
    body: bytes

    @property
    def path(self) -> str:
        """The HTTP/2 path of the method."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def methods() -> list[MethodDescriptor]:
    """Every RPC of both services."""
    return [m for s in SERVICES for m in s.methods]


class BodyMaker:
    """Deterministic for a given seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.methods = methods()

    def call(self) -> Call:
        """A random call over all RPCs; about a third of the bodies corrupt."""
        rng = self.rng
        method = rng.choice(self.methods)
        identity = rng.choice(IDENTITIES)
        body = self.message(method.input_type).SerializeToString()
        roll = rng.random()
        if roll < 0.12:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        elif roll < 0.22 and body:
            body = body[: rng.randrange(len(body))] + b"\x0a\xff"
        elif roll < 0.32 and body:
            flipped = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            body = bytes(flipped)
        elif roll < 0.33:
            body = b"\x0a\xfe\xff\xff\x7f" + b"x" * 64  # claims a 256 MiB field
        return Call(method, identity, body)

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        """A random instance of ``descriptor``."""
        message: Message = message_factory.GetMessageClass(descriptor)()
        if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            self._time(message)
            return message
        for field in descriptor.fields:
            if self.rng.random() < 0.4 or (field.message_type and depth > 3):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue
            if field.is_repeated:
                for _ in range(self.rng.randint(0, 3)):
                    self._add(message, field, depth)
            elif field.message_type is not None:
                getattr(message, field.name).CopyFrom(self.message(field.message_type, depth + 1))
            else:
                setattr(message, field.name, self.scalar(field))
        return message

    def _add(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        container = getattr(message, field.name)
        if field.message_type is not None:
            container.add().CopyFrom(self.message(field.message_type, depth + 1))
        else:
            container.append(self.scalar(field))

    def _time(self, message: Message) -> None:
        rng = self.rng
        seconds = rng.choice(
            [0, 60, 3600, -60, 1_780_000_000, 10**14, -(10**14), 253_402_300_800, 2**62]
        )
        nanos = rng.choice([0, 1, 999_999_999, 10**9, -1, -(10**9), rng.randint(0, 10**9)])
        setattr(message, "seconds", seconds)  # noqa: B010 - Timestamp or Duration
        setattr(message, "nanos", nanos)  # noqa: B010

    def scalar(self, field: FieldDescriptor) -> object:
        """A random value of a scalar field, often an extreme one."""
        rng = self.rng
        if field.type == FD.TYPE_STRING:
            return rng.choice(_STRINGS) if rng.random() < 0.8 else _random_text(rng)
        if field.type == FD.TYPE_BYTES:
            return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        if field.type == FD.TYPE_BOOL:
            return rng.random() < 0.5
        if field.type == FD.TYPE_ENUM:
            assert field.enum_type is not None
            known = [v.number for v in field.enum_type.values]
            return rng.choice([*known, 99, -1])
        if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            extremes = [0.0, 1.0, -1.0, 50.0, 100.0, 1e308, -1e308, float("nan"), float("inf")]
            return rng.choice([*extremes, 1e-300, rng.uniform(-200, 200)])
        low, high = _INT_RANGES[field.type]
        return rng.choice([0, 1, -1 if low < 0 else 2, low, high, rng.randint(low, high), 5, 1000])


def _random_text(rng: random.Random) -> str:
    return "".join(
        chr(rng.choice([rng.randint(0, 127), rng.randint(128, 0xD7FF)]))
        for _ in range(rng.randint(0, 30))
    )
