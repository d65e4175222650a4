"""POLICY.md's derivation, branch by branch, with the explanation checked;
the time-based hysteresis on the test clock; and properties over many inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govex_server.domain.clock import ManualClock
from govex_server.domain.freezes import Freeze, FreezeType
from govex_server.domain.policy import (
    Derivation,
    Freshness,
    Policy,
    PolicyMode,
    PolicyState,
    derive,
    freshness_of,
    next_time_change,
)
from govex_server.domain.policy_settings import PolicySettings
from govex_server.domain.signals import SignalSet

S = PolicySettings()
T0 = ManualClock().now()


def signals(minutes_old: float = 1, **values: float | None) -> SignalSet:
    return SignalSet(as_of=T0 - timedelta(minutes=minutes_old), **values)  # type: ignore[arg-type]


def run(
    sig: SignalSet | None,
    state: PolicyState | None = None,
    freezes: list[Freeze] | None = None,
    new_set: bool = True,
) -> Derivation:
    return derive(sig, state or PolicyState(), freezes or [], T0, S, new_set=new_set)


def freeze(kind: FreezeType, n: int = 0) -> Freeze:
    return Freeze(f"01HZZZZZZZZZZZZZZZZZZZZZZ{n}", kind, "t", "op", T0, T0 + timedelta(hours=1))


def explains(d: Derivation, *fragments: str) -> None:
    text = " | ".join(d.policy.explanation)
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# ------------------------------------------------------------ step 1 and 4


def test_no_signals_is_slow_3_percent_48h() -> None:
    d = run(None)
    assert (d.policy.mode, d.policy.cap_daily, d.policy.ramp_hours) == (PolicyMode.SLOW, 0.03, 48)
    explains(d, "no signals")
    assert d.state.freshness is Freshness.NONE


@pytest.mark.parametrize(
    ("values", "mode", "raw_cap", "ramp", "fragment"),
    [
        (
            {"contradiction_index": 0.85, "confidence": 0.9},
            PolicyMode.FREEZE,
            0.0435,
            48,
            "high contradiction",
        ),
        (
            {"contradiction_index": 0.75, "confidence": 0.9},
            PolicyMode.SLOW,
            0.0525,
            48,
            "high contradiction",
        ),
        (
            {"contradiction_index": 0.10, "confidence": 0.2},
            PolicyMode.SLOW,
            0.111,
            48,
            "low confidence",
        ),
        ({"contradiction_index": 0.50, "confidence": 0.7}, PolicyMode.SLOW, 0.07, 24, "prudent"),
        (
            {"contradiction_index": 0.10, "confidence": 0.5},
            PolicyMode.SLOW,
            0.07,
            24,
            "confidence 0.50 < 0.60",
        ),
        (
            {"contradiction_index": 0.10, "confidence": 0.9},
            PolicyMode.AGGRESSIVE,
            0.12,
            6,
            "AGGRESSIVE",
        ),
        ({"contradiction_index": 0.30, "confidence": 0.7}, PolicyMode.NORMAL, 0.08, 12, "NORMAL"),
    ],
)
def test_raw_regimes(
    values: dict[str, float], mode: PolicyMode, raw_cap: float, ramp: float, fragment: str
) -> None:
    # Start the smoother at the raw cap, so the cap shows the regime itself.
    d = run(signals(**values), PolicyState(smoothed_cap=raw_cap, freshness=Freshness.FRESH))
    assert d.policy.mode is mode
    assert d.policy.cap_daily == pytest.approx(raw_cap)
    assert d.policy.ramp_hours == ramp
    explains(d, fragment)


def test_guard_turns_aggressive_with_low_blended_score_into_normal() -> None:
    d = run(signals(contradiction_index=0.1, confidence=0.9, blended_score=60))
    assert d.policy.mode is PolicyMode.NORMAL
    assert d.policy.ramp_hours == 12
    assert d.policy.cap_daily <= 0.08
    explains(d, "blended score 60 < 70: NORMAL")
    kept = run(signals(contradiction_index=0.1, confidence=0.9, blended_score=75))
    assert kept.policy.mode is PolicyMode.AGGRESSIVE


def test_missing_contradiction_and_confidence_are_conservative_and_said() -> None:
    d = run(signals())
    explains(d, "missing contradiction and confidence", "prudent state entered")
    assert d.policy.mode is PolicyMode.SLOW  # c = 0.5 counts as prudent


# ---------------------------------------------------------------- step 6


def test_cap_moves_at_most_2_points_towards_raw() -> None:
    d = run(signals(contradiction_index=0.1, confidence=0.9), PolicyState(smoothed_cap=0.01))
    # 0.8 * 0.01 + 0.2 * 0.12 = 0.032 -> +0.022, limited to +0.02.
    assert d.policy.cap_daily == pytest.approx(0.03)
    assert d.state.smoothed_cap == pytest.approx(0.03)
    explains(d, "cap smoothed from 1.00% towards 12.00%")


def test_dead_zone_keeps_the_last_cap() -> None:
    d = run(signals(contradiction_index=0.3, confidence=0.7), PolicyState(smoothed_cap=0.084))
    assert d.policy.cap_daily == pytest.approx(0.084)
    explains(d, "dead zone")


# --------------------------------------------------- step 2 and 7: ceilings


def test_stale_signals_cap_at_8_percent_and_normal() -> None:
    d = run(
        signals(minutes_old=70, contradiction_index=0.1, confidence=0.9),
        PolicyState(smoothed_cap=0.12, freshness=Freshness.FRESH),
    )
    assert d.state.freshness is Freshness.STALE
    assert d.policy.mode is PolicyMode.NORMAL
    assert d.policy.cap_daily == 0.08
    explains(d, "signals STALE", "cap <= 8.00%", "mode NORMAL")
    assert d.state.smoothed_cap == pytest.approx(0.12)  # step 8: before the ceiling


def test_error_signals_freeze_at_5_percent() -> None:
    d = run(signals(minutes_old=130, contradiction_index=0.3, confidence=0.7))
    assert d.state.freshness is Freshness.ERROR
    assert (d.policy.mode, d.policy.cap_daily) == (PolicyMode.FREEZE, 0.05)
    explains(d, "signals ERROR")


@pytest.mark.parametrize(
    ("kind", "cap", "ramp_max"),
    [
        (FreezeType.FULL_FREEZE, 0.01, 1),
        (FreezeType.S3_ALERT_FREEZE, 0.03, 6),
        (FreezeType.ERROR_FREEZE, 0.05, 12),
    ],
)
def test_freeze_ceilings(kind: FreezeType, cap: float, ramp_max: float) -> None:
    base = run(signals(contradiction_index=0.3, confidence=0.7), PolicyState(smoothed_cap=0.08))
    d = run(
        signals(contradiction_index=0.3, confidence=0.7),
        PolicyState(smoothed_cap=0.08),
        [freeze(kind)],
    )
    assert d.policy.mode is PolicyMode.FREEZE
    assert d.policy.cap_daily == min(cap, base.policy.cap_daily)
    assert d.policy.ramp_hours == min(ramp_max, base.policy.ramp_hours)
    explains(d, kind.value)


def test_strictest_ceiling_wins_and_never_raises() -> None:
    d = run(
        signals(minutes_old=130, contradiction_index=0.3, confidence=0.7),
        PolicyState(smoothed_cap=0.08),
        [freeze(FreezeType.ERROR_FREEZE, 1), freeze(FreezeType.FULL_FREEZE, 2)],
    )
    assert (d.policy.cap_daily, d.policy.ramp_hours) == (0.01, 1)


# ----------------------------------------------------------- steps 9 to 11


def test_no_trade_zone_cost_and_slippage_from_volatility() -> None:
    d = run(
        signals(contradiction_index=0.3, confidence=0.7, volatility={"BTC": 0.5, "ETH": 0.7}),  # type: ignore[arg-type]
        PolicyState(smoothed_cap=0.08),
    )
    assert d.policy.no_trade_threshold == pytest.approx(0.04)  # 0.01 + 0.05 * 0.6
    assert d.policy.estimated_cost_bps == 75  # 15 + 100 * 0.6
    assert d.policy.slippage_limit_bps == 80  # NORMAL 50 + 50 * 0.6
    assert d.policy.min_trade_usd == 100


def test_extreme_volatility_is_clamped() -> None:
    d = run(signals(contradiction_index=0.3, confidence=0.7, volatility={"X": 50.0}))  # type: ignore[arg-type]
    assert d.policy.no_trade_threshold == 0.10
    assert d.policy.estimated_cost_bps == 100
    assert d.policy.slippage_limit_bps == 500


def test_missing_volatility_assumes_0_15_and_says_so() -> None:
    d = run(signals(contradiction_index=0.3, confidence=0.7))
    assert d.policy.no_trade_threshold == pytest.approx(0.0175)
    explains(d, "no volatility given")


# ------------------------------------------------ hysteresis on the clock


def test_contradiction_between_041_and_044_never_flips_the_prudent_state() -> None:
    clock = ManualClock()
    for start in (False, True):
        state = PolicyState(prudent=start, freshness=Freshness.FRESH)
        for i in range(40):
            clock.advance(timedelta(minutes=20))
            c = 0.41 if i % 2 else 0.44
            sig = SignalSet(as_of=clock.now(), contradiction_index=c, confidence=0.7)
            state = derive(sig, state, [], clock.now(), S, new_set=True).state
            assert state.prudent is start


def test_prudent_changes_need_15_minutes_of_dwell() -> None:
    clock = ManualClock()
    state = PolicyState(freshness=Freshness.FRESH)
    enter = SignalSet(as_of=clock.now(), contradiction_index=0.5, confidence=0.7)
    state = derive(enter, state, [], clock.now(), S, new_set=True).state
    assert state.prudent
    clock.advance(timedelta(minutes=5))
    leave = SignalSet(as_of=clock.now(), contradiction_index=0.3, confidence=0.7)
    held = derive(leave, state, [], clock.now(), S, new_set=True)
    assert held.state.prudent
    assert any("held back" in line for line in held.policy.explanation)
    # Time alone brings the change when the dwell is over.
    assert next_time_change(leave, held.state, S) == enter.as_of + timedelta(minutes=15)
    clock.advance(timedelta(minutes=10))
    released = derive(leave, held.state, [], clock.now(), S)
    assert not released.state.prudent


def test_freshness_hysteresis() -> None:
    fresh, stale = Freshness.FRESH, Freshness.STALE
    assert freshness_of(fresh, timedelta(minutes=59), False, S) is fresh
    assert freshness_of(fresh, timedelta(minutes=61), False, S) is stale
    assert freshness_of(stale, timedelta(minutes=45), True, S) is stale  # needs < 30 min
    assert freshness_of(stale, timedelta(minutes=10), True, S) is fresh
    assert freshness_of(stale, timedelta(minutes=10), False, S) is stale  # time alone: never
    assert freshness_of(fresh, timedelta(minutes=121), False, S) is Freshness.ERROR
    assert freshness_of(Freshness.NONE, timedelta(minutes=45), True, S) is stale


def test_signals_turn_stale_after_60_minutes_by_time_alone() -> None:
    clock = ManualClock()
    sig = SignalSet(as_of=clock.now(), contradiction_index=0.3, confidence=0.7)
    state = derive(sig, PolicyState(), [], clock.now(), S, new_set=True).state
    assert state.freshness is Freshness.FRESH
    assert next_time_change(sig, state, S) == sig.as_of + timedelta(minutes=60)
    clock.advance(timedelta(minutes=61))
    assert derive(sig, state, [], clock.now(), S).state.freshness is Freshness.STALE


# --------------------------------------------------------------- properties

unit = st.floats(min_value=0, max_value=1)
maybe_unit = st.none() | unit


@st.composite
def signal_sets(draw: st.DrawFn) -> SignalSet:
    vols = draw(st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL"]), st.floats(0, 20)))
    return SignalSet(
        as_of=T0 - timedelta(minutes=draw(st.floats(0, 300))),
        confidence=draw(maybe_unit),
        contradiction_index=draw(maybe_unit),
        volatility=vols,
        blended_score=draw(st.none() | st.floats(0, 100)),
    )


states = st.builds(
    PolicyState,
    freshness=st.sampled_from(list(Freshness)),
    prudent=st.booleans(),
    smoothed_cap=st.none() | st.floats(0.01, 0.5),
)
freeze_lists = st.lists(st.sampled_from(list(FreezeType)), max_size=3).map(
    lambda kinds: [freeze(k, i) for i, k in enumerate(kinds)]
)


@settings(max_examples=300)
@given(st.none() | signal_sets(), states, freeze_lists, st.booleans())
def test_every_value_stays_in_its_range(
    sig: SignalSet | None, state: PolicyState, freezes: list[Freeze], new_set: bool
) -> None:
    p = derive(sig, state, freezes, T0, S, new_set).policy
    assert 0.01 <= p.cap_daily <= 0.50
    assert 1 <= p.ramp_hours <= 72
    assert 1 <= p.slippage_limit_bps <= 500
    assert 0 <= p.no_trade_threshold <= 0.10
    assert 0 <= p.estimated_cost_bps <= 100
    assert p.min_trade_usd >= 10
    assert p.explanation


@settings(max_examples=300)
@given(signal_sets(), states)
def test_smoothed_cap_moves_at_most_2_points(sig: SignalSet, state: PolicyState) -> None:
    before = state.smoothed_cap if state.smoothed_cap is not None else S.initial_cap
    after = derive(sig, state, [], T0, S, True).state.smoothed_cap
    assert after is not None
    assert abs(after - before) <= 0.02 + 1e-12


@settings(max_examples=300)
@given(signal_sets(), states, freeze_lists, st.sampled_from(list(FreezeType)))
def test_a_freeze_never_lets_the_cap_rise(
    sig: SignalSet, state: PolicyState, freezes: list[Freeze], extra: FreezeType
) -> None:
    without = derive(sig, state, freezes, T0, S, True).policy
    with_it = derive(sig, state, [*freezes, freeze(extra, 9)], T0, S, True).policy
    assert with_it.cap_daily <= without.cap_daily
    assert with_it.mode <= without.mode


@settings(max_examples=200)
@given(
    st.lists(signal_sets(), min_size=2, max_size=6),
    st.integers(0, 4),
    st.sampled_from(list(FreezeType)),
)
def test_lifting_a_ceiling_leaves_no_lasting_mark(
    sets: list[SignalSet], frozen_at: int, kind: FreezeType
) -> None:
    plain, frozen = PolicyState(), PolicyState()
    for i, drawn in enumerate(sets):
        sig = replace(drawn, as_of=T0)
        plain = derive(sig, plain, [], T0, S, True).state
        frozen = derive(sig, frozen, [freeze(kind)] if i == frozen_at else [], T0, S, True).state
    assert frozen.smoothed_cap == plain.smoothed_cap
    assert frozen.policy is not None and plain.policy is not None
    if frozen_at != len(sets) - 1:
        assert frozen.policy.cap_daily == plain.policy.cap_daily


@given(st.lists(st.tuples(signal_sets(), freeze_lists, st.floats(0, 120)), max_size=6))
def test_same_inputs_and_times_give_the_same_policies(
    steps: list[tuple[SignalSet, list[Freeze], float]],
) -> None:
    def replay() -> list[Policy]:
        clock = ManualClock()
        state = PolicyState()
        out: list[Policy] = []
        for sig, freezes, minutes in steps:
            clock.advance(timedelta(minutes=minutes))
            d = derive(sig, state, freezes, clock.now(), S, True)
            state = d.state
            out.append(d.policy)
        return out

    assert replay() == replay()
