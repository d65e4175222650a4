"""ML signal sets and their validation (POLICY.md "Inputs")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from govex_server.domain.errors import FieldViolation, invalid_argument

# The optional numbers of a set besides volatility, regime and phase inputs.
SCALARS = (
    "confidence",
    "contradiction_index",
    "blended_score",
    "decision_index",
    "fear_greed",
    "avg_correlation",
)

PHASE_INPUTS = (
    "btc_dominance_pct",
    "btc_dominance_delta_7d",
    "rs_eth_7d",
    "rs_eth_30d",
    "rs_large_7d",
    "rs_large_30d",
    "rs_alt_7d",
    "rs_alt_30d",
    "breadth",
    "dispersion",
    "volume_concentration",
)

# Declared ranges: (low, high, low inclusive, high inclusive). None = unbounded.
_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "confidence": (0, 1, True, True),
    "contradiction_index": (0, 1, True, True),
    "blended_score": (0, 100, True, True),
    "decision_index": (0, 100, True, True),
    "fear_greed": (0, 100, True, True),
    "avg_correlation": (-1, 1, True, True),
    "btc_dominance_pct": (0, 100, True, True),
    "btc_dominance_delta_7d": (None, None, True, True),
    "rs_eth_7d": (0, None, False, True),
    "rs_eth_30d": (0, None, False, True),
    "rs_large_7d": (0, None, False, True),
    "rs_large_30d": (0, None, False, True),
    "rs_alt_7d": (0, None, False, True),
    "rs_alt_30d": (0, None, False, True),
    "breadth": (0, 1, True, True),
    "dispersion": (0, 1, True, True),
    "volume_concentration": (0, 1, True, True),
}
REGIME_TOLERANCE = 0.01


@dataclass(frozen=True)
class Regime:
    """Regime probabilities, summing to 1."""

    bull: float
    neutral: float
    bear: float


@dataclass(frozen=True)
class SignalSet:
    """One published set. Missing values are None: never filled in."""

    as_of: datetime
    source: str = ""
    confidence: float | None = None
    contradiction_index: float | None = None
    volatility: dict[str, float] = field(default_factory=dict)
    regime: Regime | None = None
    blended_score: float | None = None
    decision_index: float | None = None
    fear_greed: float | None = None
    avg_correlation: float | None = None
    phase_inputs: dict[str, float] = field(default_factory=dict)
    publisher: str = ""
    receive_time: datetime | None = None
    # The stored set's id ("signalSets/{id}"); empty before it is stored.
    # Not part of the stored payload: the row's key is.
    id: str = ""

    @property
    def mean_volatility(self) -> float | None:
        """Mean of the per-asset volatilities, None when none were given."""
        if not self.volatility:
            return None
        return math.fsum(self.volatility.values()) / len(self.volatility)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the store."""
        return {
            "as_of": self.as_of.isoformat(),
            "source": self.source,
            "confidence": self.confidence,
            "contradiction_index": self.contradiction_index,
            "volatility": self.volatility,
            "regime": None
            if self.regime is None
            else [self.regime.bull, self.regime.neutral, self.regime.bear],
            "blended_score": self.blended_score,
            "decision_index": self.decision_index,
            "fear_greed": self.fear_greed,
            "avg_correlation": self.avg_correlation,
            "phase_inputs": self.phase_inputs,
            "publisher": self.publisher,
            "receive_time": self.receive_time.isoformat() if self.receive_time else None,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> SignalSet:
        """The inverse of ``to_json``."""
        regime = data.get("regime")
        return SignalSet(
            as_of=datetime.fromisoformat(data["as_of"]),
            source=data.get("source", ""),
            confidence=data.get("confidence"),
            contradiction_index=data.get("contradiction_index"),
            volatility=dict(data.get("volatility") or {}),
            regime=Regime(*regime) if regime else None,
            blended_score=data.get("blended_score"),
            decision_index=data.get("decision_index"),
            fear_greed=data.get("fear_greed"),
            avg_correlation=data.get("avg_correlation"),
            phase_inputs=dict(data.get("phase_inputs") or {}),
            publisher=data.get("publisher", ""),
            receive_time=datetime.fromisoformat(data["receive_time"])
            if data.get("receive_time")
            else None,
        )


def _check(name: str, value: float | None, where: str, out: list[FieldViolation]) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        out.append(FieldViolation(where, "must be a finite number"))
        return
    low, high, low_in, high_in = _RANGES[name]
    too_low = low is not None and (value < low if low_in else value <= low)
    too_high = high is not None and (value > high if high_in else value >= high)
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bracket = ("[" if low_in else "(") + f"{lo}, {hi}" + ("]" if high_in else ")")
        out.append(FieldViolation(where, f"{value} is outside {bracket}"))


def validate_signals(
    signals: SignalSet, now: datetime, current_as_of: datetime | None, skew: timedelta
) -> SignalSet:
    """Returns the set when valid; INVALID_ARGUMENT naming every bad field."""
    out: list[FieldViolation] = []
    if signals.as_of > now + skew:
        out.append(FieldViolation("signals.as_of", f"is in the future (allowed skew {skew})"))
    if current_as_of is not None and signals.as_of < current_as_of:
        out.append(
            FieldViolation(
                "signals.as_of",
                f"is older than the current set's as_of {current_as_of.isoformat()}",
            )
        )
    if len(signals.source) > 200:
        out.append(FieldViolation("signals.source", "at most 200 characters"))
    for name in SCALARS:
        _check(name, getattr(signals, name), f"signals.{name}", out)
    for i, (asset, vol) in enumerate(signals.volatility.items()):
        where = f"signals.volatility[{i}]"
        if not asset or len(asset) > 20:
            out.append(FieldViolation(f"{where}.asset", "1 to 20 characters"))
        if not math.isfinite(vol) or vol < 0:
            out.append(FieldViolation(f"{where}.volatility", f"{vol} must be finite and >= 0"))
    if signals.regime is not None:
        probabilities = (signals.regime.bull, signals.regime.neutral, signals.regime.bear)
        names = ("bull", "neutral", "bear")
        bad = False
        for name, p in zip(names, probabilities, strict=True):
            if not math.isfinite(p) or not 0 <= p <= 1:
                out.append(FieldViolation(f"signals.regime.{name}", f"{p} is outside [0, 1]"))
                bad = True
        if not bad and abs(math.fsum(probabilities) - 1) > REGIME_TOLERANCE:
            out.append(
                FieldViolation(
                    "signals.regime", f"probabilities sum to {math.fsum(probabilities):.4g}, not 1"
                )
            )
    for name, value in signals.phase_inputs.items():
        _check(name, value, f"signals.phase_inputs.{name}", out)
    if out:
        raise invalid_argument(out)
    return signals
