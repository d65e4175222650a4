"""The phase engine: BTC -> ETH -> LARGE -> ALT rotation (POLICY.md).

The history kept is that of the *leaders* of successive signal sets, never of
the accepted phase (the old engine stored the held phase and so could never
change phase)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from govex_server.domain.policy_settings import minutes, number, problems
from govex_server.domain.signals import PHASE_INPUTS, SignalSet

_W = (0.0, 1.0)  # weights, and thresholds of inputs in [0, 1]
_RS = (0.0, 1000.0)  # relative strength ratios
_POINTS = (0.0, 100.0)  # dominance points


class Phase(enum.IntEnum):
    """Rotation phases, in cycle order."""

    BTC = 1
    ETH = 2
    LARGE = 3
    ALT = 4


CYCLE = (Phase.BTC, Phase.ETH, Phase.LARGE, Phase.ALT)


@dataclass(frozen=True)
class PhaseSettings:
    """Every number of the phase engine (POLICY.md), as the ``[phase]`` table.

    Each score rule is a weight and a threshold named after the phase it
    scores for and the input it reads (``above``: the rule holds when the
    input is greater; ``below``: smaller; ``within``: its magnitude is
    smaller)."""

    # Persistence: a new leader must lead this many sets spanning this long.
    streak_needed: int = number(3, (1, 1000), "persistence")
    min_span: timedelta = minutes(30, (0, 10080), "persistence")
    # Quality: freshness falls to 0 over this many minutes of age.
    freshness_horizon_minutes: float = number(30.0, (0.1, 10080), "quality")
    # Quality: coherence is lowered by ``incoherence_penalty`` for each input
    # outside its plausible range.
    coherent_rs_eth_min: float = number(0.3, (0, 1000), "quality")
    coherent_rs_eth_max: float = number(3.0, (0, 1000), "quality")
    coherent_dominance_min: float = number(20.0, (0, 100), "quality")
    coherent_dominance_max: float = number(80.0, (0, 100), "quality")
    incoherence_penalty: float = number(0.5, (0, 1), "quality")
    # Confidence = p_max * quality * this, clamped to [0, 1].
    confidence_boost: float = number(1.2, (0, 10), "confidence")
    # BTC scores.
    btc_dominance_delta_7d_weight: float = number(0.4, _W, "scores")
    btc_dominance_delta_7d_above: float = number(0.5, (-100, 100), "scores")
    btc_rs_eth_7d_weight: float = number(0.3, _W, "scores")
    btc_rs_eth_7d_below: float = number(0.95, _RS, "scores")
    btc_rs_large_7d_weight: float = number(0.2, _W, "scores")
    btc_rs_large_7d_below: float = number(0.95, _RS, "scores")
    btc_rs_alt_7d_weight: float = number(0.1, _W, "scores")
    btc_rs_alt_7d_below: float = number(0.95, _RS, "scores")
    # ETH scores.
    eth_rs_eth_7d_weight: float = number(0.5, _W, "scores")
    eth_rs_eth_7d_above: float = number(1.05, _RS, "scores")
    eth_rs_eth_30d_weight: float = number(0.2, _W, "scores")
    eth_rs_eth_30d_above: float = number(1.05, _RS, "scores")
    eth_dominance_delta_7d_weight: float = number(0.2, _W, "scores")
    eth_dominance_delta_7d_within: float = number(0.5, _POINTS, "scores")
    eth_rs_large_7d_weight: float = number(0.1, _W, "scores")
    eth_rs_large_7d_below: float = number(1.05, _RS, "scores")
    # LARGE scores.
    large_rs_large_7d_weight: float = number(0.4, _W, "scores")
    large_rs_large_7d_above: float = number(1.05, _RS, "scores")
    large_rs_large_30d_weight: float = number(0.2, _W, "scores")
    large_rs_large_30d_above: float = number(1.05, _RS, "scores")
    large_rs_eth_7d_weight: float = number(0.2, _W, "scores")
    large_rs_eth_7d_above: float = number(0.98, _RS, "scores")
    large_breadth_weight: float = number(0.2, _W, "scores")
    large_breadth_above: float = number(0.5, _W, "scores")
    # ALT scores.
    alt_rs_alt_7d_weight: float = number(0.3, _W, "scores")
    alt_rs_alt_7d_above: float = number(1.05, _RS, "scores")
    alt_breadth_weight: float = number(0.3, _W, "scores")
    alt_breadth_above: float = number(0.65, _W, "scores")
    alt_dispersion_weight: float = number(0.2, _W, "scores")
    alt_dispersion_above: float = number(0.6, _W, "scores")
    alt_volume_concentration_weight: float = number(0.2, _W, "scores")
    alt_volume_concentration_below: float = number(0.7, _W, "scores")


# (phase, input, comparison): each rule's weight and threshold are the
# settings ``<phase>_<input>_weight`` and ``<phase>_<input>_<comparison>``.
RULES: tuple[tuple[str, str, str], ...] = (
    ("btc", "dominance_delta_7d", "above"),
    ("btc", "rs_eth_7d", "below"),
    ("btc", "rs_large_7d", "below"),
    ("btc", "rs_alt_7d", "below"),
    ("eth", "rs_eth_7d", "above"),
    ("eth", "rs_eth_30d", "above"),
    ("eth", "dominance_delta_7d", "within"),
    ("eth", "rs_large_7d", "below"),
    ("large", "rs_large_7d", "above"),
    ("large", "rs_large_30d", "above"),
    ("large", "rs_eth_7d", "above"),
    ("large", "breadth", "above"),
    ("alt", "rs_alt_7d", "above"),
    ("alt", "breadth", "above"),
    ("alt", "dispersion", "above"),
    ("alt", "volume_concentration", "below"),
)
# The signal set's names for the rules' inputs.
_INPUT = {"dominance_delta_7d": "btc_dominance_delta_7d"}


def phase_problems(p: PhaseSettings) -> list[str]:
    """Each value's range, then the rules that tie values together."""
    lines = problems(p, "phase")
    if p.coherent_rs_eth_min >= p.coherent_rs_eth_max:
        lines.append("phase: coherent_rs_eth_min < coherent_rs_eth_max does not hold")
    if p.coherent_dominance_min >= p.coherent_dominance_max:
        lines.append("phase: coherent_dominance_min < coherent_dominance_max does not hold")
    return lines


@dataclass(frozen=True)
class PhaseReading:
    """What one signal set says about the phase."""

    probabilities: dict[Phase, float]
    leader: Phase
    quality: float
    confidence: float
    likely_next: Phase


@dataclass(frozen=True)
class PhaseState:
    """The accepted phase and the leader streak (persisted)."""

    current: Phase | None = None
    since: datetime | None = None
    candidate: Phase | None = None
    streak: int = 0
    streak_start: datetime | None = None
    reading: PhaseReading | None = None
    history: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the store."""
        r = self.reading
        return {
            "current": self.current.name if self.current else None,
            "since": self.since.isoformat() if self.since else None,
            "candidate": self.candidate.name if self.candidate else None,
            "streak": self.streak,
            "streak_start": self.streak_start.isoformat() if self.streak_start else None,
            "reading": None
            if r is None
            else {
                "probabilities": {p.name: v for p, v in r.probabilities.items()},
                "leader": r.leader.name,
                "quality": r.quality,
                "confidence": r.confidence,
                "likely_next": r.likely_next.name,
            },
            "history": [list(h) for h in self.history],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> PhaseState:
        """The inverse of ``to_json``."""

        def when(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        r = data.get("reading")
        reading = None
        if r:
            reading = PhaseReading(
                {Phase[k]: v for k, v in r["probabilities"].items()},
                Phase[r["leader"]],
                r["quality"],
                r["confidence"],
                Phase[r["likely_next"]],
            )
        return PhaseState(
            Phase[data["current"]] if data.get("current") else None,
            when("since"),
            Phase[data["candidate"]] if data.get("candidate") else None,
            int(data.get("streak", 0)),
            when("streak_start"),
            reading,
            tuple((str(h[0]), str(h[1])) for h in data.get("history", ())),
        )


def _holds(value: float | None, comparison: str, threshold: float) -> bool:
    if value is None:
        return False  # a rule whose input is missing scores nothing
    if comparison == "above":
        return value > threshold
    if comparison == "below":
        return value < threshold
    return abs(value) < threshold


def scores(inputs: dict[str, float], settings: PhaseSettings) -> dict[Phase, float]:
    """Rule scores per phase; a rule whose input is missing scores nothing."""
    out = dict.fromkeys(CYCLE, 0.0)
    for phase, name, comparison in RULES:
        prefix = f"{phase}_{name}"
        value = inputs.get(_INPUT.get(name, name))
        if _holds(value, comparison, getattr(settings, f"{prefix}_{comparison}")):
            out[Phase[phase.upper()]] += getattr(settings, f"{prefix}_weight")
    return out


def read(signals: SignalSet, now: datetime, settings: PhaseSettings) -> PhaseReading:
    """Probabilities, leader, quality, confidence and likely next phase."""
    raw = scores(signals.phase_inputs, settings)
    total = sum(raw.values())
    probabilities = (
        {p: raw[p] / total for p in CYCLE} if total > 0 else {p: 1 / len(CYCLE) for p in CYCLE}
    )
    leader = max(CYCLE, key=lambda p: (probabilities[p], -p.value))
    age_minutes = max(0.0, (now - signals.as_of).total_seconds() / 60)
    freshness = max(0.0, 1 - age_minutes / settings.freshness_horizon_minutes)
    completeness = sum(1 for k in PHASE_INPUTS if k in signals.phase_inputs) / len(PHASE_INPUTS)
    coherence = 1.0
    rs_eth = signals.phase_inputs.get("rs_eth_7d")
    dominance = signals.phase_inputs.get("btc_dominance_pct")
    s = settings
    if rs_eth is not None and not s.coherent_rs_eth_min <= rs_eth <= s.coherent_rs_eth_max:
        coherence -= s.incoherence_penalty
    if dominance is not None and not (
        s.coherent_dominance_min <= dominance <= s.coherent_dominance_max
    ):
        coherence -= s.incoherence_penalty
    quality = (freshness + completeness + max(0.0, coherence)) / 3
    confidence = max(0.0, min(1.0, probabilities[leader] * quality * s.confidence_boost))
    successor = CYCLE[(CYCLE.index(leader) + 1) % len(CYCLE)]
    others = [p for p in CYCLE if p not in (leader, successor)]
    best_other = max(others, key=lambda p: probabilities[p])
    # The cycle's next phase, unless another is closer to the leader.
    closer = abs(probabilities[leader] - probabilities[best_other]) < abs(
        probabilities[leader] - probabilities[successor]
    )
    likely_next = best_other if closer else successor
    return PhaseReading(probabilities, leader, quality, confidence, likely_next)


def advance(
    state: PhaseState, signals: SignalSet, now: datetime, settings: PhaseSettings
) -> tuple[PhaseState, bool]:
    """The state after one more signal set, and whether the phase changed.

    A new leader replaces the current phase only after leading in
    ``streak_needed`` consecutive sets spanning ``min_span`` (by as_of). With
    no phase accepted yet, the first leader is accepted at once."""
    reading = read(signals, now, settings)
    leader = reading.leader
    history = (*state.history[-9:], (signals.as_of.isoformat(), leader.name))
    if state.current is None:
        return PhaseState(leader, signals.as_of, None, 0, None, reading, history), True
    if leader == state.current:
        return PhaseState(state.current, state.since, None, 0, None, reading, history), False
    if leader == state.candidate and state.streak_start is not None:
        streak, start = state.streak + 1, state.streak_start
    else:
        streak, start = 1, signals.as_of
    if streak >= settings.streak_needed and signals.as_of - start >= settings.min_span:
        return PhaseState(leader, signals.as_of, None, 0, None, reading, history), True
    return PhaseState(state.current, state.since, leader, streak, start, reading, history), False
