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
class PolicySettings:
    """Every number of POLICY.md, as a setting (defaults are the reference)."""

    stale_after: timedelta = timedelta(minutes=60)
    fresh_below: timedelta = timedelta(minutes=30)
    error_after: timedelta = timedelta(minutes=120)
    missing_contradiction: float = 0.5
    missing_confidence: float = 0.4
    prudent_enter: float = 0.45
    prudent_exit: float = 0.40
    prudent_min_dwell: timedelta = timedelta(minutes=15)
    default_volatility: float = 0.15
    initial_cap: float = 0.08
    dead_zone: float = 0.005
    smoothing: float = 0.8
    max_step: float = 0.02
    min_trade_usd: float = 100.0
    aggressive_min_blended: float = 70.0


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


def derive(
    signals: SignalSet | None,
    state: PolicyState,
    freezes: Iterable[Freeze],
    now: datetime,
    settings: PolicySettings,
    new_set: bool = False,
) -> Derivation:
    """One derivation (POLICY.md steps 1-11). ``new_set`` is True when this
    derivation follows the publication of ``signals``."""
    lines: list[str] = []
    active = sorted((f for f in freezes if f.active_at(now)), key=lambda f: f.id)
    volatility = signals.mean_volatility if signals else None
    v = settings.default_volatility if volatility is None else volatility
    new_state = replace(state, freeze_ids=tuple(f.id for f in active))

    if signals is None:
        # Step 1.
        mode, cap, ramp = PolicyMode.SLOW, 0.03, 48.0
        lines.append("no signals: SLOW, cap 3%, ramp 48h")
        new_state = replace(new_state, freshness=Freshness.NONE)
        freshness = Freshness.NONE
    else:
        # Step 2.
        age = now - signals.as_of
        freshness = freshness_of(state.freshness, age, new_set, settings)
        if freshness is not state.freshness:
            lines.append(
                f"signals {freshness.value} (age {int(age.total_seconds() // 60)} min, "
                f"was {state.freshness.value})"
            )
        c, f = signals.contradiction_index, signals.confidence
        if c is None or f is None:
            missing = [n for n, x in (("contradiction", c), ("confidence", f)) if x is None]
            lines.append(
                f"missing {' and '.join(missing)}: counted as contradiction "
                f"{settings.missing_contradiction}, confidence {settings.missing_confidence}"
            )
        c = settings.missing_contradiction if c is None else c
        f = settings.missing_confidence if f is None else f
        # Step 3: prudent state with hysteresis and a minimum dwell.
        prudent, changed = state.prudent, state.prudent_changed
        wants = prudent
        if c >= settings.prudent_enter:
            wants = True
        elif c <= settings.prudent_exit:
            wants = False
        if wants != prudent:
            dwell_ok = changed is None or now - changed >= settings.prudent_min_dwell
            if dwell_ok:
                prudent, changed = wants, now
                lines.append(
                    f"prudent state {'entered' if prudent else 'left'} (contradiction {c:.2f})"
                )
            else:
                lines.append(
                    f"prudent state change held back: last change under "
                    f"{int(settings.prudent_min_dwell.total_seconds() // 60)} min ago"
                )
        new_state = replace(
            new_state, freshness=freshness, prudent=prudent, prudent_changed=changed
        )
        # Step 4: raw regime.
        if c > 0.70 or f < 0.30:
            mode = PolicyMode.FREEZE if c > 0.80 else PolicyMode.SLOW
            raw_cap = max(0.03, 0.12 - 0.09 * c)
            ramp = 48.0
            lines.append(
                f"high contradiction or low confidence (c={c:.2f}, f={f:.2f}): "
                f"{mode.name}, cap {raw_cap:.2%}, ramp 48h"
            )
        elif prudent or f < 0.60:
            mode, raw_cap, ramp = PolicyMode.SLOW, 0.07, 24.0
            lines.append(
                f"{'prudent' if prudent else f'confidence {f:.2f} < 0.60'}: SLOW, cap 7%, ramp 24h"
            )
        elif f > 0.80 and c < 0.20:
            mode, raw_cap, ramp = PolicyMode.AGGRESSIVE, 0.12, 6.0
            lines.append(f"confidence {f:.2f}, contradiction {c:.2f}: AGGRESSIVE, cap 12%, ramp 6h")
        else:
            mode, raw_cap, ramp = PolicyMode.NORMAL, 0.08, 12.0
            lines.append("NORMAL, cap 8%, ramp 12h")
        # Step 5: guard.
        b = signals.blended_score
        if mode is PolicyMode.AGGRESSIVE and b is not None and b < settings.aggressive_min_blended:
            mode, raw_cap, ramp = PolicyMode.NORMAL, min(raw_cap, 0.08), 12.0
            lines.append(f"blended score {b:g} < {settings.aggressive_min_blended:g}: NORMAL")
        # Step 6: anti-oscillation of the cap.
        last = state.smoothed_cap if state.smoothed_cap is not None else settings.initial_cap
        if abs(raw_cap - last) < settings.dead_zone:
            cap = last
            if raw_cap != last:
                lines.append(f"cap kept at {last:.2%}: raw {raw_cap:.2%} is in the dead zone")
        else:
            smoothed = settings.smoothing * last + (1 - settings.smoothing) * raw_cap
            cap = last + _clamp(smoothed - last, -settings.max_step, settings.max_step)
            if abs(cap - raw_cap) > 1e-12:
                lines.append(f"cap smoothed from {last:.2%} towards {raw_cap:.2%}: {cap:.2%}")
        # Step 8: the smoothing state keeps the cap from before the ceilings.
        new_state = replace(new_state, smoothed_cap=cap)

    # Step 7: ceilings, each only ever lowering; the strictest wins.
    def ceiling(why: str, cap_max: float, ramp_max: float | None, mode_max: PolicyMode) -> None:
        nonlocal cap, ramp, mode
        changed = []
        if cap > cap_max:
            cap = cap_max
            changed.append(f"cap <= {cap_max:.0%}")
        if ramp_max is not None and ramp > ramp_max:
            ramp = ramp_max
            changed.append(f"ramp <= {ramp_max:g}h")
        if mode > mode_max:
            mode = mode_max
            changed.append(f"mode {mode_max.name}")
        if changed:
            lines.append(f"{why}: {', '.join(changed)}")

    if freshness is Freshness.STALE:
        ceiling("signals STALE", 0.08, None, PolicyMode.NORMAL)
    elif freshness is Freshness.ERROR:
        ceiling("signals ERROR", 0.05, None, PolicyMode.FREEZE)
    for frz in active:
        if frz.type is FreezeType.FULL_FREEZE:
            ceiling(f"{frz.name} FULL_FREEZE", 0.01, 1.0, PolicyMode.FREEZE)
        elif frz.type is FreezeType.S3_ALERT_FREEZE:
            ceiling(f"{frz.name} S3_ALERT_FREEZE", 0.03, 6.0, PolicyMode.FREEZE)
        else:
            ceiling(f"{frz.name} ERROR_FREEZE", 0.05, 12.0, PolicyMode.FREEZE)

    # Step 9: no-trade zone and cost.
    no_trade = _clamp(0.01 + 0.05 * v, 0.01, 0.10)
    cost = int(_clamp(round(15 + 100 * v), 0, 100))
    if volatility is None:
        lines.append(f"no volatility given: {v:g} assumed")
    # Step 10: slippage by mode, and the minimum trade.
    base = {
        PolicyMode.AGGRESSIVE: 100,
        PolicyMode.NORMAL: 50,
        PolicyMode.SLOW: 30,
        PolicyMode.FREEZE: 20,
    }[mode]
    slippage = round(_clamp(base + 50 * v, 1, 500))
    min_trade = max(Decimal(10), money.exact(settings.min_trade_usd))
    # Step 11: every value within its declared range.
    final_cap = _clamp(cap, 0.01, 0.50)
    if final_cap != cap:
        lines.append(f"cap clamped to {final_cap:.0%}")
    policy = Policy(
        mode=mode,
        cap_daily=round(final_cap, 10),
        ramp_hours=_clamp(ramp, 1, 72),
        min_trade_usd=min_trade,
        slippage_limit_bps=int(_clamp(slippage, 1, 500)),
        no_trade_threshold=round(_clamp(no_trade, 0, 0.10), 10),
        estimated_cost_bps=cost,
        explanation=tuple(lines),
        derive_time=now,
    )
    return Derivation(policy, replace(new_state, policy=policy))


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
        wants = state.prudent
        if c >= settings.prudent_enter:
            wants = True
        elif c <= settings.prudent_exit:
            wants = False
        if wants != state.prudent:
            candidates.append(state.prudent_changed + settings.prudent_min_dwell)
    return min(candidates) if candidates else None
