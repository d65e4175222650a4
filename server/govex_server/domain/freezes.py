"""Freezes: the three types, what each still allows, and their lifetimes."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from govex_server.domain.errors import invalid_field

MIN_TTL = timedelta(minutes=1)
MAX_TTL = timedelta(days=7)


class FreezeType(enum.Enum):
    """The kinds of freeze (DESIGN.md §3)."""

    FULL_FREEZE = "FULL_FREEZE"
    S3_ALERT_FREEZE = "S3_ALERT_FREEZE"
    ERROR_FREEZE = "ERROR_FREEZE"


class Operation(enum.Enum):
    """The classes of trading operation that freezes allow or forbid."""

    PURCHASE = "PURCHASE"
    SELL_TO_STABLES = "SELL_TO_STABLES"
    ROTATION = "ROTATION"
    HEDGE = "HEDGE"
    REBALANCING = "REBALANCING"


class FreezeEnd(enum.Enum):
    """How a freeze ended."""

    EXPIRED = "EXPIRED"
    LIFTED = "LIFTED"


_O = Operation

# What each freeze type still ALLOWS. This table is the specification; a type
# missing here allows nothing (fail closed).
ALLOWED: dict[FreezeType, frozenset[Operation]] = {
    FreezeType.FULL_FREEZE: frozenset(),
    FreezeType.S3_ALERT_FREEZE: frozenset({_O.SELL_TO_STABLES, _O.ROTATION, _O.HEDGE}),
    FreezeType.ERROR_FREEZE: frozenset({_O.SELL_TO_STABLES}),
}


def allows(freeze_type: FreezeType, operation: Operation) -> bool:
    """True when a freeze of ``freeze_type`` lets ``operation`` through."""
    return operation in ALLOWED.get(freeze_type, frozenset())


@dataclass(frozen=True)
class Freeze:
    """One freeze, active until its expire time unless lifted earlier."""

    id: str
    type: FreezeType
    reason: str
    actor: str
    create_time: datetime
    expire_time: datetime
    end_time: datetime | None = None
    end: FreezeEnd | None = None
    ended_by: str = ""
    end_reason: str = ""

    @property
    def name(self) -> str:
        """The resource name, ``freezes/{id}``."""
        return f"freezes/{self.id}"

    def active_at(self, now: datetime) -> bool:
        """Active: not ended, and its expire time not reached, whatever the
        expiry task has done so far."""
        return self.end is None and now < self.expire_time


@dataclass(frozen=True)
class Verdict:
    """Whether an operation is allowed now, and what forbids it."""

    operation: Operation
    allowed: bool
    blocking: tuple[Freeze, ...]
    explanation: str


def verdict(operation: Operation, freezes: Iterable[Freeze], now: datetime) -> Verdict:
    """An operation is allowed only if every active freeze allows it."""
    active = [f for f in freezes if f.active_at(now)]
    blocking = tuple(
        sorted((f for f in active if not allows(f.type, operation)), key=lambda f: f.id)
    )
    if blocking:
        names = ", ".join(
            f"{f.name} ({f.type.value} until {f.expire_time:%Y-%m-%dT%H:%M:%SZ})" for f in blocking
        )
        explanation = f"{operation.value} is forbidden by {names}"
    elif active:
        explanation = f"{operation.value} is allowed by every active freeze ({len(active)})"
    else:
        explanation = f"{operation.value} is allowed: no active freeze"
    return Verdict(operation, not blocking, blocking, explanation)


def resolve_expiry(now: datetime, ttl: timedelta | None, expire_time: datetime | None) -> datetime:
    """The expire time of a new freeze from a TTL or an absolute time, each
    within 1 minute to 7 days from now."""
    if ttl is None and expire_time is None:
        raise invalid_field("ttl", "required: a ttl (1 minute to 7 days) or an expire_time")
    if ttl is not None:
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise invalid_field("ttl", f"{ttl} is outside 1 minute to 7 days")
        return now + ttl
    assert expire_time is not None
    if expire_time <= now:
        raise invalid_field("expire_time", "is in the past")
    if not MIN_TTL <= expire_time - now <= MAX_TTL:
        raise invalid_field("expire_time", "must be 1 minute to 7 days from now")
    return expire_time
