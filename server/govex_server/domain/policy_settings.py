"""Every number of the policy derivation, as a setting with its documented
default and the range it is checked against at start-up.

The defaults are the reference algorithm's numbers; a desk tunes them in the
``[policy]`` table of the settings file (durations as ``<name>_minutes``).
Only the declared ranges of step 11 stay fixed: they are the contract's
ranges of the values the policy returns, not tuning."""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from datetime import timedelta
from typing import Any

# The contract's ranges of the derived values (step 11).
CAP_RANGE = (0.01, 0.50)
RAMP_RANGE = (1.0, 72.0)
SLIPPAGE_RANGE = (1.0, 500.0)
NO_TRADE_RANGE = (0.0, 0.10)

_FRACTION = (0.0, 1.0)
_CAP = CAP_RANGE
_RAMP = RAMP_RANGE
_BPS = SLIPPAGE_RANGE


def number(default: float, low_high: tuple[float, float], step: str) -> Any:
    """A numeric setting: its default, its allowed [low, high] and the
    POLICY.md step it belongs to."""
    return field(default=default, metadata={"range": low_high, "step": step})


def minutes(default: float, low_high: tuple[float, float], step: str) -> Any:
    """A duration setting, given in minutes in the settings file."""
    return field(default=timedelta(minutes=default), metadata={"range": low_high, "step": step})


@dataclass(frozen=True)
class PolicySettings:
    """The numbers of POLICY.md steps 1-10 (field names are the setting names)."""

    # Step 1: no signals ever published.
    no_signals_cap: float = number(0.03, _CAP, "1")
    no_signals_ramp_hours: float = number(48.0, _RAMP, "1")
    # Step 2: freshness, and what missing inputs count as.
    stale_after: timedelta = minutes(60, (1, 10080), "2")
    fresh_below: timedelta = minutes(30, (0, 10080), "2")
    error_after: timedelta = minutes(120, (1, 10080), "2")
    missing_contradiction: float = number(0.5, _FRACTION, "2")
    missing_confidence: float = number(0.4, _FRACTION, "2")
    # Step 3: the prudent state's hysteresis and dwell.
    prudent_enter: float = number(0.45, _FRACTION, "3")
    prudent_exit: float = number(0.40, _FRACTION, "3")
    prudent_min_dwell: timedelta = minutes(15, (0, 10080), "3")
    # The mean volatility assumed when a set gives none (steps 9 and 10).
    default_volatility: float = number(0.15, (0, 10), "9")
    # Step 4, first branch: high contradiction or low confidence.
    distress_contradiction: float = number(0.70, _FRACTION, "4")
    distress_confidence: float = number(0.30, _FRACTION, "4")
    freeze_contradiction: float = number(0.80, _FRACTION, "4")
    distress_cap_base: float = number(0.12, _CAP, "4")
    distress_cap_slope: float = number(0.09, (0, 0.5), "4")
    distress_cap_floor: float = number(0.03, _CAP, "4")
    distress_ramp_hours: float = number(48.0, _RAMP, "4")
    # Step 4, second branch: prudent or unconvinced.
    slow_confidence: float = number(0.60, _FRACTION, "4")
    slow_cap: float = number(0.07, _CAP, "4")
    slow_ramp_hours: float = number(24.0, _RAMP, "4")
    # Step 4, third branch: confident and coherent.
    aggressive_confidence: float = number(0.80, _FRACTION, "4")
    aggressive_contradiction: float = number(0.20, _FRACTION, "4")
    aggressive_cap: float = number(0.12, _CAP, "4")
    aggressive_ramp_hours: float = number(6.0, _RAMP, "4")
    # Step 4, otherwise (and step 5's guard, which makes it NORMAL).
    normal_cap: float = number(0.08, _CAP, "4")
    normal_ramp_hours: float = number(12.0, _RAMP, "4")
    # Step 5: AGGRESSIVE needs a blended score of at least this.
    aggressive_min_blended: float = number(70.0, (0, 100), "5")
    # Step 6: anti-oscillation of the cap.
    initial_cap: float = number(0.08, _CAP, "6")
    dead_zone: float = number(0.005, (0, 0.49), "6")
    smoothing: float = number(0.8, (0, 0.99), "6")
    max_step: float = number(0.02, (0.001, 0.5), "6")
    # Step 7: ceilings for stale and failed signals, and per freeze type.
    stale_cap: float = number(0.08, _CAP, "7")
    error_cap: float = number(0.05, _CAP, "7")
    full_freeze_cap: float = number(0.01, _CAP, "7")
    full_freeze_ramp_hours: float = number(1.0, _RAMP, "7")
    s3_freeze_cap: float = number(0.03, _CAP, "7")
    s3_freeze_ramp_hours: float = number(6.0, _RAMP, "7")
    error_freeze_cap: float = number(0.05, _CAP, "7")
    error_freeze_ramp_hours: float = number(12.0, _RAMP, "7")
    # Step 9: the no-trade zone and the cost estimate, linear in volatility.
    no_trade_base: float = number(0.01, NO_TRADE_RANGE, "9")
    no_trade_per_volatility: float = number(0.05, (0, 1), "9")
    no_trade_min: float = number(0.01, NO_TRADE_RANGE, "9")
    no_trade_max: float = number(0.10, NO_TRADE_RANGE, "9")
    cost_base_bps: float = number(15.0, (0, 10000), "9")
    cost_per_volatility_bps: float = number(100.0, (0, 10000), "9")
    cost_max_bps: float = number(100.0, (0, 10000), "9")
    # Step 10: the slippage limit by mode, plus a volatility term.
    slippage_aggressive_bps: float = number(100.0, _BPS, "10")
    slippage_normal_bps: float = number(50.0, _BPS, "10")
    slippage_slow_bps: float = number(30.0, _BPS, "10")
    slippage_freeze_bps: float = number(20.0, _BPS, "10")
    slippage_per_volatility_bps: float = number(50.0, (0, 500), "10")
    # Step 10: the minimum trade. Set as the top-level ``min_trade_usd``
    # (also GOVEX_MIN_TRADE_USD), at least 10.
    min_trade_usd: float = number(100.0, (10, 1e12), "10")


def problems(settings: object, section: str, skip: frozenset[str] = frozenset()) -> list[str]:
    """One line per value outside its range (``section.name: value is
    outside [low, high]``), for any settings dataclass built with
    ``number``/``minutes``."""
    lines = []
    for spec in _ranged(settings):
        if spec.name in skip:
            continue
        value = getattr(settings, spec.name)
        low, high = spec.metadata["range"]
        shown = value
        name = spec.name
        if isinstance(value, timedelta):
            shown = value.total_seconds() / 60
            name = f"{name}_minutes"
        if not low <= shown <= high:
            lines.append(f"{section}.{name}: {shown:g} is outside [{low:g}, {high:g}]")
    return lines


def policy_problems(p: PolicySettings) -> list[str]:
    """Each value's range, then the rules that tie values together."""
    lines = problems(p, "policy", frozenset({"min_trade_usd"}))
    rules = [
        (p.fresh_below < p.stale_after < p.error_after, "fresh_below < stale_after < error_after"),
        (p.prudent_exit < p.prudent_enter, "prudent_exit < prudent_enter"),
        (p.no_trade_min <= p.no_trade_max, "no_trade_min <= no_trade_max"),
        (
            p.distress_contradiction <= p.freeze_contradiction,
            "distress_contradiction <= freeze_contradiction",
        ),
    ]
    lines += [f"policy: {rule} does not hold" for ok, rule in rules if not ok]
    return lines


def _ranged(settings: object) -> list[Field[Any]]:
    return [f for f in fields(settings) if "range" in f.metadata]  # type: ignore[arg-type]
