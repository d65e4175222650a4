"""The freeze whitelist (every type x every operation, and combinations),
lifetimes on the test clock, and TTL validation."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from govex_server.domain.clock import ManualClock
from govex_server.domain.errors import GovexError
from govex_server.domain.freezes import (
    ALLOWED,
    Freeze,
    FreezeEnd,
    FreezeType,
    Operation,
    allows,
    resolve_expiry,
    verdict,
)

F, OP = FreezeType, Operation
# DESIGN.md §3, written out independently: (purchases, sell to stables,
# rotations, hedging, rebalancing).
TABLE = {
    F.FULL_FREEZE: (False, False, False, False, False),
    F.S3_ALERT_FREEZE: (False, True, True, True, False),
    F.ERROR_FREEZE: (False, True, False, False, False),
}
COLUMNS = (OP.PURCHASE, OP.SELL_TO_STABLES, OP.ROTATION, OP.HEDGE, OP.REBALANCING)
CLOCK_START = ManualClock().now()


def freeze(kind: FreezeType, n: int = 0, ttl_minutes: int = 60) -> Freeze:
    return Freeze(
        f"01HZZZZZZZZZZZZZZZZZZZZZZ{n}",
        kind,
        "test",
        "carol",
        CLOCK_START,
        CLOCK_START + timedelta(minutes=ttl_minutes),
    )


@pytest.mark.parametrize(("kind", "op"), list(itertools.product(FreezeType, Operation)))
def test_whitelist_every_type_and_operation(kind: FreezeType, op: Operation) -> None:
    expected = TABLE[kind][COLUMNS.index(op)]
    assert allows(kind, op) is expected
    result = verdict(op, [freeze(kind)], CLOCK_START)
    assert result.allowed is expected
    assert [f.type for f in result.blocking] == ([] if expected else [kind])


def test_every_type_is_in_the_table() -> None:
    assert set(ALLOWED) == set(FreezeType)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("op", list(Operation))
def test_several_freezes_allow_only_what_all_allow(size: int, op: Operation) -> None:
    for kinds in itertools.combinations_with_replacement(list(FreezeType), size):
        freezes = [freeze(k, i) for i, k in enumerate(kinds)]
        result = verdict(op, freezes, CLOCK_START)
        assert result.allowed is all(TABLE[k][COLUMNS.index(op)] for k in kinds), kinds
        assert len(result.blocking) == sum(not TABLE[k][COLUMNS.index(op)] for k in kinds)


def test_no_freeze_allows_everything() -> None:
    for op in Operation:
        result = verdict(op, [], CLOCK_START)
        assert result.allowed
        assert "no active freeze" in result.explanation


def test_an_expired_freeze_never_blocks_even_if_not_yet_ended() -> None:
    clock = ManualClock(CLOCK_START)
    full = freeze(F.FULL_FREEZE, ttl_minutes=10)
    assert not verdict(OP.SELL_TO_STABLES, [full], clock.now()).allowed
    clock.advance(timedelta(minutes=9, seconds=59))
    assert full.active_at(clock.now())
    clock.advance(timedelta(seconds=1))
    assert not full.active_at(clock.now())
    assert verdict(OP.PURCHASE, [full], clock.now()).allowed


def test_a_lifted_freeze_is_not_active() -> None:
    lifted = Freeze(**{**freeze(F.FULL_FREEZE).__dict__, "end": FreezeEnd.LIFTED})
    assert not lifted.active_at(CLOCK_START)


def test_blocking_explanation_names_each_freeze_and_its_expiry() -> None:
    result = verdict(
        OP.PURCHASE, [freeze(F.ERROR_FREEZE, 1), freeze(F.FULL_FREEZE, 2)], CLOCK_START
    )
    assert "ERROR_FREEZE" in result.explanation
    assert "FULL_FREEZE" in result.explanation
    assert "until" in result.explanation


@pytest.mark.parametrize(
    ("ttl", "ok"),
    [
        (timedelta(0), False),
        (timedelta(seconds=-5), False),
        (timedelta(seconds=59), False),
        (timedelta(minutes=1), True),
        (timedelta(days=7), True),
        (timedelta(days=7, seconds=1), False),
    ],
)
def test_ttl_is_one_minute_to_seven_days(ttl: timedelta, ok: bool) -> None:
    if ok:
        assert resolve_expiry(CLOCK_START, ttl, None) == CLOCK_START + ttl
    else:
        with pytest.raises(GovexError) as caught:
            resolve_expiry(CLOCK_START, ttl, None)
        assert caught.value.field_violations[0].field == "ttl"


def test_expire_time_in_the_past_or_too_far_is_refused() -> None:
    for when in (CLOCK_START - timedelta(seconds=1), CLOCK_START + timedelta(days=8)):
        with pytest.raises(GovexError) as caught:
            resolve_expiry(CLOCK_START, None, when)
        assert caught.value.field_violations[0].field == "expire_time"
    later = CLOCK_START + timedelta(hours=2)
    assert resolve_expiry(CLOCK_START, None, later) == later


def test_missing_expiry_is_refused() -> None:
    with pytest.raises(GovexError):
        resolve_expiry(CLOCK_START, None, None)


async def test_manual_clock_wakes_sleepers_when_moved() -> None:
    clock = ManualClock()
    target = clock.now() + timedelta(minutes=5)
    sleeper = asyncio.create_task(clock.sleep_until(target))
    await asyncio.sleep(0)
    clock.advance(timedelta(minutes=4))
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(timedelta(minutes=1))
    await asyncio.wait_for(sleeper, 1)
    await clock.sleep_until(target)  # already due: returns at once
