"""Phase scoring and persistence, allocation verdicts, signal validation."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest

from govex_server.domain.allocation import Recommendation, evaluate, turnover_percent
from govex_server.domain.clock import ManualClock
from govex_server.domain.errors import GovexError
from govex_server.domain.phase import CYCLE, Phase, PhaseSettings, PhaseState, advance, read, scores
from govex_server.domain.plans import Target
from govex_server.domain.policy import PolicyState, derive
from govex_server.domain.policy_settings import PolicySettings
from govex_server.domain.signals import Regime, SignalSet, validate_signals

T0 = ManualClock().now()
PS = PhaseSettings()


@pytest.mark.parametrize(
    ("inputs", "phase", "score"),
    [
        ({"btc_dominance_delta_7d": 0.6}, Phase.BTC, 0.4),
        ({"rs_eth_7d": 0.9}, Phase.BTC, 0.3),
        ({"rs_large_7d": 0.9}, Phase.BTC, 0.2),
        ({"rs_alt_7d": 0.9}, Phase.BTC, 0.1),
        ({"rs_eth_7d": 1.1}, Phase.ETH, 0.5),
        ({"rs_eth_30d": 1.1}, Phase.ETH, 0.2),
        ({"btc_dominance_delta_7d": 0.1}, Phase.ETH, 0.2),
        ({"rs_large_7d": 1.0}, Phase.ETH, 0.1),
        ({"rs_large_7d": 1.1}, Phase.LARGE, 0.4),
        ({"rs_large_30d": 1.1}, Phase.LARGE, 0.2),
        ({"rs_eth_7d": 1.0}, Phase.LARGE, 0.2),
        ({"breadth": 0.55}, Phase.LARGE, 0.2),
        ({"rs_alt_7d": 1.1}, Phase.ALT, 0.3),
        ({"breadth": 0.7}, Phase.ALT, 0.3),
        ({"dispersion": 0.7}, Phase.ALT, 0.2),
        ({"volume_concentration": 0.5}, Phase.ALT, 0.2),
    ],
)
def test_each_scoring_rule(inputs: dict[str, float], phase: Phase, score: float) -> None:
    assert scores(inputs, PS)[phase] == pytest.approx(score)


def test_missing_inputs_score_nothing() -> None:
    assert scores({}, PS) == dict.fromkeys(CYCLE, 0)
    reading = read(SignalSet(as_of=T0), T0, PS)
    assert reading.probabilities == dict.fromkeys(CYCLE, 0.25)
    assert reading.quality == pytest.approx((1 + 0 + 1) / 3)


def test_probabilities_quality_confidence_and_next() -> None:
    inputs = {"rs_eth_7d": 1.1, "rs_eth_30d": 1.1, "btc_dominance_delta_7d": 0.1}
    reading = read(SignalSet(as_of=T0 - timedelta(minutes=15), phase_inputs=inputs), T0, PS)
    # ETH: 0.5 + 0.2 + 0.2 + 0.1 (rs_large_7d missing -> 0) = 0.9; LARGE: 0.2
    assert reading.leader is Phase.ETH
    assert sum(reading.probabilities.values()) == pytest.approx(1)
    assert reading.probabilities[Phase.ETH] == pytest.approx(0.9 / 1.1)
    freshness, completeness, coherence = 0.5, 3 / 11, 1.0
    assert reading.quality == pytest.approx((freshness + completeness + coherence) / 3)
    assert reading.confidence == pytest.approx(min(1, 0.9 / 1.1 * reading.quality * 1.2))
    assert reading.likely_next is Phase.LARGE  # the cycle's next phase


def test_likely_next_is_another_phase_when_closer_to_the_leader() -> None:
    inputs = {"rs_alt_7d": 1.1, "breadth": 0.7, "dispersion": 0.7, "rs_large_7d": 1.1}
    reading = read(SignalSet(as_of=T0, phase_inputs=inputs), T0, PS)
    # ALT 0.8 leads; LARGE 0.6 is closer to it than BTC (0.0), the cycle's next.
    assert reading.leader is Phase.ALT
    assert reading.probabilities[Phase.BTC] == 0
    assert reading.likely_next is Phase.LARGE


def test_incoherent_inputs_lower_quality() -> None:
    good = read(SignalSet(as_of=T0, phase_inputs={"rs_eth_7d": 1.0}), T0, PS)
    bad = read(SignalSet(as_of=T0, phase_inputs={"rs_eth_7d": 5.0}), T0, PS)
    assert bad.quality < good.quality


def eth_set(minutes: float) -> SignalSet:
    return SignalSet(as_of=T0 + timedelta(minutes=minutes), phase_inputs={"rs_eth_7d": 1.2})


def btc_set(minutes: float) -> SignalSet:
    return SignalSet(
        as_of=T0 + timedelta(minutes=minutes), phase_inputs={"btc_dominance_delta_7d": 1.0}
    )


def test_phase_change_needs_3_sets_over_30_minutes() -> None:
    state, changed = advance(PhaseState(), btc_set(0), T0, PS)
    assert (state.current, changed) == (Phase.BTC, True)  # the first leader is accepted
    for minutes in (1, 10, 20):  # 3 sets, but only 19 minutes apart
        state, changed = advance(state, eth_set(minutes), T0 + timedelta(minutes=minutes), PS)
        assert not changed
        assert state.current is Phase.BTC
    state, changed = advance(state, eth_set(31), T0 + timedelta(minutes=31), PS)
    assert (state.current, changed) == (Phase.ETH, True)


def test_an_interrupted_streak_starts_over() -> None:
    state, _ = advance(PhaseState(), btc_set(0), T0, PS)
    state, _ = advance(state, eth_set(10), T0, PS)
    state, _ = advance(state, eth_set(20), T0, PS)
    state, _ = advance(state, btc_set(25), T0, PS)  # BTC leads again: streak reset
    state, _ = advance(state, eth_set(40), T0, PS)
    state, changed = advance(state, eth_set(50), T0, PS)
    assert not changed
    assert state.streak == 2


def test_phase_state_round_trips_through_json() -> None:
    state, _ = advance(PhaseState(), eth_set(0), T0, PS)
    state, _ = advance(state, btc_set(5), T0, PS)
    assert PhaseState.from_json(state.to_json()) == state


POLICY = derive(None, PolicyState(), [], T0, PolicySettings()).policy  # cap 3%, cost 30 bps


def targets(**weights: float) -> list[Target]:
    return [Target(a, w) for a, w in weights.items()]


def test_allocation_no_action_inside_the_zone() -> None:
    v = evaluate(targets(BTC=50, USDT=50), targets(BTC=51, USDT=49), None, POLICY, T0)
    assert v.recommendation is Recommendation.NO_ACTION
    assert all(c.inside_no_trade_zone for c in v.changes)
    assert v.days_at_cap == 0


def test_allocation_approve_review_and_reject() -> None:
    value = Decimal(1_000_000)
    small = evaluate(targets(BTC=50, USDT=50), targets(BTC=53, USDT=47), value, POLICY, T0)
    assert small.recommendation is Recommendation.APPROVE
    assert small.turnover_percent == pytest.approx(3)
    assert small.days_at_cap == 1
    # 3% traded at 30 bps is 0.9 bps of 1,000,000: exactly 90.00, to the cent.
    assert str(small.estimated_cost_usd) == "90.00"
    big = evaluate(targets(BTC=50, USDT=50), targets(BTC=70, USDT=30), None, POLICY, T0)
    assert big.recommendation is Recommendation.REVIEW
    assert big.days_at_cap == 7  # 20% at 3% a day
    expensive_policy = derive(
        SignalSet(as_of=T0, volatility={"X": 5.0}, contradiction_index=0.3, confidence=0.7),
        PolicyState(),
        [],
        T0,
        PolicySettings(),
    ).policy
    all_in = evaluate(targets(USDT=100), targets(BTC=100), None, expensive_policy, T0)
    assert all_in.recommendation is Recommendation.REJECT  # 100 bps of the portfolio


def test_allocation_refuses_bad_weights() -> None:
    with pytest.raises(GovexError) as caught:
        evaluate(targets(BTC=50, USDT=40), targets(BTC=100), None, POLICY, T0)
    assert caught.value.field_violations[0].field == "current"
    with pytest.raises(GovexError) as caught:
        evaluate(targets(BTC=100), targets(BTC=100), Decimal(-5), POLICY, T0)
    assert caught.value.field_violations[0].field == "portfolio_value_usd"


def test_turnover_counts_assets_on_either_side() -> None:
    assert turnover_percent([], targets(BTC=100)) == 100
    assert turnover_percent(targets(BTC=100), targets(ETH=100)) == 100
    assert turnover_percent(targets(BTC=60, USDT=40), targets(BTC=40, USDT=60)) == 20


SKEW = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"confidence": 1.5}, "signals.confidence"),
        ({"confidence": math.nan}, "signals.confidence"),
        ({"contradiction_index": -0.1}, "signals.contradiction_index"),
        ({"blended_score": 101}, "signals.blended_score"),
        ({"fear_greed": math.inf}, "signals.fear_greed"),
        ({"avg_correlation": -1.5}, "signals.avg_correlation"),
        ({"volatility": {"BTC": -1.0}}, "signals.volatility[0].volatility"),
        ({"regime": Regime(0.5, 0.3, 0.3)}, "signals.regime"),
        ({"regime": Regime(1.2, -0.1, -0.1)}, "signals.regime.bull"),
        ({"phase_inputs": {"rs_eth_7d": 0.0}}, "signals.phase_inputs.rs_eth_7d"),
        ({"phase_inputs": {"breadth": 2.0}}, "signals.phase_inputs.breadth"),
    ],
)
def test_signal_values_out_of_range_are_named(values: dict[str, object], field: str) -> None:
    with pytest.raises(GovexError) as caught:
        validate_signals(SignalSet(as_of=T0, **values), T0, None, SKEW)  # type: ignore[arg-type]
    assert field in [v.field for v in caught.value.field_violations]


def test_as_of_in_the_future_or_older_than_current_is_refused() -> None:
    with pytest.raises(GovexError):
        validate_signals(SignalSet(as_of=T0 + timedelta(minutes=5)), T0, None, SKEW)
    validate_signals(SignalSet(as_of=T0 + timedelta(seconds=10)), T0, None, SKEW)
    with pytest.raises(GovexError):
        validate_signals(SignalSet(as_of=T0 - timedelta(minutes=5)), T0, T0, SKEW)


def test_regime_within_tolerance_is_accepted() -> None:
    validate_signals(SignalSet(as_of=T0, regime=Regime(0.5, 0.3, 0.205)), T0, None, SKEW)


def test_allocation_days_count_sells_and_buys_as_the_engine_does() -> None:
    # A rotation: 5% of BTC sold and 5% of ETH bought is 10% of the portfolio
    # traded against the 3% daily cap, four days (turnover alone said two).
    rotation = evaluate(
        targets(BTC=50, USDT=50), targets(BTC=45, ETH=5, USDT=50), Decimal(1_000_000), POLICY, T0
    )
    assert rotation.turnover_percent == pytest.approx(5)
    assert rotation.days_at_cap == 4
