"""The execution policy derived from ML signals, freezes and time
(the reference algorithm's step numbers, 1 to 11, are used below).

Pure and deterministic: the same signals, freezes, state and clock time give
the same policy and the same explanation."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from govex_server.domain import money
from govex_server.domain.freezes import Freeze, FreezeType
from govex_server.domain.policy_settings import (
    CAP_RANGE,
    NO_TRADE_RANGE,
    RAMP_RANGE,
    SLIPPAGE_RANGE,
    PolicySettings,
)
from govex_server.domain.signals import SignalSet


class PolicyMode(enum.IntEnum):
    """Execution modes, ordered from the most to the least careful."""

    FREEZE = 1
    SLOW = 2
    NORMAL = 3
    AGGRESSIVE = 4


class Freshness(enum.Enum):
    """How fresh the current signals are."""

    NONE = "NONE"
    FRESH = "FRESH"
    STALE = "STALE"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Policy:
    """What execution must obey. Fractions, not percents (cap 0.08 = 8%)."""

    mode: PolicyMode
    cap_daily: float
    ramp_hours: float
    # Money (in the quote currency), so exact; the rest are ratios.
    min_trade_usd: Decimal
    slippage_limit_bps: int
    no_trade_threshold: float
    estimated_cost_bps: int
    explanation: tuple[str, ...]
    derive_time: datetime

    def same_values(self, other: Policy | None) -> bool:
        """True when every enforced value equals ``other``'s."""
        return other is not None and (
            self.mode,
            self.cap_daily,
            self.ramp_hours,
            self.min_trade_usd,
            self.slippage_limit_bps,
            self.no_trade_threshold,
            self.estimated_cost_bps,
        ) == (
            other.mode,
            other.cap_daily,
            other.ramp_hours,
            other.min_trade_usd,
            other.slippage_limit_bps,
            other.no_trade_threshold,
            other.estimated_cost_bps,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the store."""
        return {
            "mode": self.mode.name,
            "cap_daily": self.cap_daily,
            "ramp_hours": self.ramp_hours,
            "min_trade_usd": money.text(self.min_trade_usd),
            "slippage_limit_bps": self.slippage_limit_bps,
            "no_trade_threshold": self.no_trade_threshold,
            "estimated_cost_bps": self.estimated_cost_bps,
            "explanation": list(self.explanation),
            "derive_time": self.derive_time.isoformat(),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Policy:
        """The inverse of ``to_json``."""
        return Policy(
            PolicyMode[data["mode"]],
            data["cap_daily"],
            data["ramp_hours"],
            money.exact(data["min_trade_usd"]),
            data["slippage_limit_bps"],
            data["no_trade_threshold"],
            data["estimated_cost_bps"],
            tuple(data["explanation"]),
            datetime.fromisoformat(data["derive_time"]),
        )


@dataclass(frozen=True)
class PolicyState:
    """What the derivation remembers between runs (persisted)."""

    freshness: Freshness = Freshness.NONE
    prudent: bool = False
    prudent_changed: datetime | None = None
    smoothed_cap: float | None = None
    policy: Policy | None = None
    freeze_ids: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the store."""
        return {
            "freshness": self.freshness.value,
            "prudent": self.prudent,
            "prudent_changed": self.prudent_changed.isoformat() if self.prudent_changed else None,
            "smoothed_cap": self.smoothed_cap,
            "policy": self.policy.to_json() if self.policy else None,
            "freeze_ids": list(self.freeze_ids),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> PolicyState:
        """The inverse of ``to_json``."""
        changed = data.get("prudent_changed")
        return PolicyState(
            Freshness(data.get("freshness", "NONE")),
            bool(data.get("prudent", False)),
            datetime.fromisoformat(changed) if changed else None,
            data.get("smoothed_cap"),
            Policy.from_json(data["policy"]) if data.get("policy") else None,
            tuple(data.get("freeze_ids", ())),
        )


@dataclass(frozen=True)
class Derivation:
    """A derived policy and the state to keep."""

    policy: Policy
    state: PolicyState


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def freshness_of(
    previous: Freshness, age: timedelta, new_set: bool, settings: PolicySettings
) -> Freshness:
    """Step 2: STALE after 60 min, ERROR after 120 min; FRESH again only when a
    new set younger than 30 min arrives (time alone never makes it fresher)."""
    if age > settings.error_after:
        return Freshness.ERROR
    if age > settings.stale_after:
        return Freshness.STALE
    if previous is Freshness.FRESH:
        return Freshness.FRESH
    if new_set and age < settings.fresh_below:
        return Freshness.FRESH
    # NONE, STALE or ERROR, and no set young enough: still not fresh.
    return Freshness.STALE


def pct(fraction: float) -> str:
    """A fraction as the percent people read (0.07 -> "7.00%")."""
    return f"{fraction * 100:.2f}%"


def _wants_prudent(c: float, prudent: bool, s: PolicySettings) -> bool:
    if c >= s.prudent_enter:
        return True
    if c <= s.prudent_exit:
        return False
    return prudent  # between the two thresholds: keep the state


def _regime(
    c: float, f: float, prudent: bool, b: float | None, s: PolicySettings, lines: list[str]
) -> tuple[PolicyMode, float, float]:
    """Steps 4 and 5: mode, raw cap and ramp from the inputs."""
    if c > s.distress_contradiction or f < s.distress_confidence:
        mode = PolicyMode.FREEZE if c > s.freeze_contradiction else PolicyMode.SLOW
        raw_cap = max(s.distress_cap_floor, s.distress_cap_base - s.distress_cap_slope * c)
        ramp = s.distress_ramp_hours
        lines.append(
            f"step 4: high contradiction or low confidence (c={c:.2f}, f={f:.2f}): "
            f"{mode.name}, cap {pct(raw_cap)}, ramp {ramp:g}h"
        )
    elif prudent or f < s.slow_confidence:
        mode, raw_cap, ramp = PolicyMode.SLOW, s.slow_cap, s.slow_ramp_hours
        why = "prudent" if prudent else f"confidence {f:.2f} < {s.slow_confidence:.2f}"
        lines.append(f"step 4: {why}: SLOW, cap {pct(raw_cap)}, ramp {ramp:g}h")
    elif f > s.aggressive_confidence and c < s.aggressive_contradiction:
        mode, raw_cap, ramp = PolicyMode.AGGRESSIVE, s.aggressive_cap, s.aggressive_ramp_hours
        lines.append(
            f"step 4: confidence {f:.2f}, contradiction {c:.2f}: AGGRESSIVE, "
            f"cap {pct(raw_cap)}, ramp {ramp:g}h"
        )
    else:
        mode, raw_cap, ramp = PolicyMode.NORMAL, s.normal_cap, s.normal_ramp_hours
        lines.append(f"step 4: NORMAL, cap {pct(raw_cap)}, ramp {ramp:g}h")
    if mode is PolicyMode.AGGRESSIVE and b is not None and b < s.aggressive_min_blended:
        mode, raw_cap, ramp = PolicyMode.NORMAL, min(raw_cap, s.normal_cap), s.normal_ramp_hours
        lines.append(
            f"step 5: blended score {b:g} < {s.aggressive_min_blended:g}: NORMAL, "
            f"cap {pct(raw_cap)}, ramp {ramp:g}h"
        )
    return mode, raw_cap, ramp


def _smooth(raw_cap: float, last: float, s: PolicySettings, lines: list[str]) -> float:
    """Step 6: dead zone, smoothing and a bounded step from the last cap."""
    if abs(raw_cap - last) < s.dead_zone:
        if raw_cap != last:
            lines.append(f"step 6: cap kept at {pct(last)}: raw {pct(raw_cap)} is in the dead zone")
        return last
    smoothed = s.smoothing * last + (1 - s.smoothing) * raw_cap
    cap = last + _clamp(smoothed - last, -s.max_step, s.max_step)
    if abs(cap - raw_cap) > 1e-12:
        lines.append(f"step 6: cap smoothed from {pct(last)} towards {pct(raw_cap)}: {pct(cap)}")
    return cap


def derive(
    signals: SignalSet | None,
    state: PolicyState,
    freezes: Iterable[Freeze],
    now: datetime,
    settings: PolicySettings,
    new_set: bool = False,
) -> Derivation:
    """One derivation (POLICY.md steps 1-11). ``new_set`` is True when this
    derivation follows the publication of ``signals``: only then is the cap
    smoothed (step 6); otherwise (time passed, a freeze started or ended) the
    stored smoothed cap is used as it is (step 8)."""
    s = settings
    lines: list[str] = []
    active = sorted((f for f in freezes if f.active_at(now)), key=lambda f: f.id)
    volatility = signals.mean_volatility if signals else None
    v = s.default_volatility if volatility is None else volatility
    new_state = replace(state, freeze_ids=tuple(f.id for f in active))

    if signals is None:
        # Step 1.
        mode, cap, ramp = PolicyMode.SLOW, s.no_signals_cap, s.no_signals_ramp_hours
        lines.append(f"step 1: no signals: SLOW, cap {pct(cap)}, ramp {ramp:g}h")
        new_state = replace(new_state, freshness=Freshness.NONE)
        freshness = Freshness.NONE
    else:
        # Step 2.
        age = now - signals.as_of
        freshness = freshness_of(state.freshness, age, new_set, s)
        if freshness is not state.freshness:
            lines.append(
                f"step 2: signals {freshness.value} (age {int(age.total_seconds() // 60)} min, "
                f"was {state.freshness.value})"
            )
        c, f = signals.contradiction_index, signals.confidence
        if c is None or f is None:
            missing = [n for n, x in (("contradiction", c), ("confidence", f)) if x is None]
            lines.append(
                f"step 2: missing {' and '.join(missing)}: counted as contradiction "
                f"{s.missing_contradiction:g}, confidence {s.missing_confidence:g}"
            )
        c = s.missing_contradiction if c is None else c
        f = s.missing_confidence if f is None else f
        # Step 3: prudent state with hysteresis and a minimum dwell.
        prudent, changed = state.prudent, state.prudent_changed
        wants = _wants_prudent(c, prudent, s)
        if wants != prudent:
            if changed is None or now - changed >= s.prudent_min_dwell:
                prudent, changed = wants, now
                lines.append(
                    f"step 3: prudent state {'entered' if prudent else 'left'} "
                    f"(contradiction {c:.2f})"
                )
            else:
                lines.append(
                    f"step 3: prudent state change held back: last change under "
                    f"{s.prudent_min_dwell.total_seconds() / 60:g} min ago"
                )
        new_state = replace(
            new_state, freshness=freshness, prudent=prudent, prudent_changed=changed
        )
        mode, raw_cap, ramp = _regime(c, f, prudent, signals.blended_score, s, lines)
        last = state.smoothed_cap if state.smoothed_cap is not None else s.initial_cap
        if new_set or state.smoothed_cap is None:
            cap = _smooth(raw_cap, last, s, lines)
        else:
            # Step 8: smoothing ran when the set was published; time and
            # freezes never smooth again.
            cap = last
            lines.append(f"step 8: cap {pct(cap)} as smoothed when the signals were published")
        # Step 8: the smoothing state keeps the cap from before the ceilings.
        new_state = replace(new_state, smoothed_cap=cap)

    # Step 7: ceilings, each only ever lowering; the strictest wins.
    def ceiling(why: str, cap_max: float, ramp_max: float | None, mode_max: PolicyMode) -> None:
        nonlocal cap, ramp, mode
        changed = []
        if cap > cap_max:
            cap = cap_max
            changed.append(f"cap <= {pct(cap_max)}")
        if ramp_max is not None and ramp > ramp_max:
            ramp = ramp_max
            changed.append(f"ramp <= {ramp_max:g}h")
        if mode > mode_max:
            mode = mode_max
            changed.append(f"mode {mode_max.name}")
        if changed:
            lines.append(f"step 7: {why}: {', '.join(changed)}")

    if freshness is Freshness.STALE:
        ceiling("signals STALE", s.stale_cap, None, PolicyMode.NORMAL)
    elif freshness is Freshness.ERROR:
        ceiling("signals ERROR", s.error_cap, None, PolicyMode.FREEZE)
    for frz in active:
        if frz.type is FreezeType.FULL_FREEZE:
            ceiling(f"{frz.name} FULL_FREEZE", s.full_freeze_cap, s.full_freeze_ramp_hours, _F)
        elif frz.type is FreezeType.S3_ALERT_FREEZE:
            ceiling(f"{frz.name} S3_ALERT_FREEZE", s.s3_freeze_cap, s.s3_freeze_ramp_hours, _F)
        else:
            ceiling(f"{frz.name} ERROR_FREEZE", s.error_freeze_cap, s.error_freeze_ramp_hours, _F)

    # Step 9: no-trade zone and cost.
    no_trade = _clamp(
        s.no_trade_base + s.no_trade_per_volatility * v, s.no_trade_min, s.no_trade_max
    )
    cost = int(_clamp(round(s.cost_base_bps + s.cost_per_volatility_bps * v), 0, s.cost_max_bps))
    if volatility is None:
        lines.append(f"step 9: no volatility given: {v:g} assumed")
    lines.append(f"step 9: no-trade zone {pct(no_trade)}, cost {cost} bps (volatility {v:g})")
    # Step 10: slippage by mode, and the minimum trade.
    base = {
        PolicyMode.AGGRESSIVE: s.slippage_aggressive_bps,
        PolicyMode.NORMAL: s.slippage_normal_bps,
        PolicyMode.SLOW: s.slippage_slow_bps,
        PolicyMode.FREEZE: s.slippage_freeze_bps,
    }[mode]
    slippage = round(_clamp(base + s.slippage_per_volatility_bps * v, *SLIPPAGE_RANGE))
    min_trade = max(Decimal(10), money.exact(s.min_trade_usd))
    lines.append(
        f"step 10: slippage limit {slippage} bps ({mode.name} {base:g} + "
        f"{s.slippage_per_volatility_bps:g} x {v:g}), minimum trade {money.text(min_trade)}"
    )
    # Step 11: every value within its declared range.
    final_cap = _clamp(cap, *CAP_RANGE)
    if final_cap != cap:
        lines.append(f"step 11: cap clamped to {pct(final_cap)}")
    policy = Policy(
        mode=mode,
        cap_daily=round(final_cap, 10),
        ramp_hours=_clamp(ramp, *RAMP_RANGE),
        min_trade_usd=min_trade,
        slippage_limit_bps=int(_clamp(slippage, *SLIPPAGE_RANGE)),
        no_trade_threshold=round(_clamp(no_trade, *NO_TRADE_RANGE), 10),
        estimated_cost_bps=cost,
        explanation=tuple(lines),
        derive_time=now,
    )
    return Derivation(policy, replace(new_state, policy=policy))


_F = PolicyMode.FREEZE


def next_time_change(
    signals: SignalSet | None, state: PolicyState, settings: PolicySettings
) -> datetime | None:
    """When time alone will change the derivation next: a freshness threshold
    or the end of a held-back prudent change's dwell."""
    if signals is None:
        return None
    candidates = []
    if state.freshness in (Freshness.FRESH, Freshness.NONE):
        candidates.append(signals.as_of + settings.stale_after)
    if state.freshness is not Freshness.ERROR:
        candidates.append(signals.as_of + settings.error_after)
    if state.prudent_changed is not None:
        c = signals.contradiction_index
        c = settings.missing_contradiction if c is None else c
        if _wants_prudent(c, state.prudent, settings) != state.prudent:
            candidates.append(state.prudent_changed + settings.prudent_min_dwell)
    return min(candidates) if candidates else None
