"""The phase engine: BTC -> ETH -> LARGE -> ALT rotation (POLICY.md).

The history kept is that of the *leaders* of successive signal sets, never of
the accepted phase (the old engine stored the held phase and so could never
change phase)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from govex_server.domain.signals import PHASE_INPUTS, SignalSet


class Phase(enum.IntEnum):
    """Rotation phases, in cycle order."""

    BTC = 1
    ETH = 2
    LARGE = 3
    ALT = 4


CYCLE = (Phase.BTC, Phase.ETH, Phase.LARGE, Phase.ALT)


@dataclass(frozen=True)
class PhaseSettings:
    """Persistence rule and freshness horizon."""

    streak_needed: int = 3
    min_span: timedelta = timedelta(minutes=30)
    freshness_horizon_minutes: float = 30.0


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


def _gt(value: float | None, limit: float) -> bool:
    return value is not None and value > limit


def _lt(value: float | None, limit: float) -> bool:
    return value is not None and value < limit


def scores(inputs: dict[str, float]) -> dict[Phase, float]:
    """Rule scores per phase; a rule whose input is missing scores nothing."""
    g = inputs.get
    delta = g("btc_dominance_delta_7d")
    return {
        Phase.BTC: 0.4 * _gt(delta, 0.5)
        + 0.3 * _lt(g("rs_eth_7d"), 0.95)
        + 0.2 * _lt(g("rs_large_7d"), 0.95)
        + 0.1 * _lt(g("rs_alt_7d"), 0.95),
        Phase.ETH: 0.5 * _gt(g("rs_eth_7d"), 1.05)
        + 0.2 * _gt(g("rs_eth_30d"), 1.05)
        + 0.2 * (delta is not None and abs(delta) < 0.5)
        + 0.1 * _lt(g("rs_large_7d"), 1.05),
        Phase.LARGE: 0.4 * _gt(g("rs_large_7d"), 1.05)
        + 0.2 * _gt(g("rs_large_30d"), 1.05)
        + 0.2 * _gt(g("rs_eth_7d"), 0.98)
        + 0.2 * _gt(g("breadth"), 0.5),
        Phase.ALT: 0.3 * _gt(g("rs_alt_7d"), 1.05)
        + 0.3 * _gt(g("breadth"), 0.65)
        + 0.2 * _gt(g("dispersion"), 0.6)
        + 0.2 * _lt(g("volume_concentration"), 0.7),
    }


def read(signals: SignalSet, now: datetime, settings: PhaseSettings) -> PhaseReading:
    """Probabilities, leader, quality, confidence and likely next phase."""
    raw = scores(signals.phase_inputs)
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
    if rs_eth is not None and not 0.3 <= rs_eth <= 3:
        coherence -= 0.5
    if dominance is not None and not 20 <= dominance <= 80:
        coherence -= 0.5
    quality = (freshness + completeness + max(0.0, coherence)) / 3
    confidence = max(0.0, min(1.0, probabilities[leader] * quality * 1.2))
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
