"""Every number of the phase engine is a setting of the ``[phase]`` table: each
row changes one number in a settings file and shows the engine follows it;
a meta-test fails for a setting without a row. Also: bad values of both
tables are refused at start-up with one line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from govex_server.config import ConfigError, load_settings
from govex_server.domain.clock import ManualClock
from govex_server.domain.phase import RULES, Phase, PhaseSettings, PhaseState, advance, read, scores
from govex_server.domain.signals import SignalSet
from tests.support import PRINCIPALS_FILE

T0 = ManualClock().now()
DEFAULT = PhaseSettings()


def load(tmp_path: Path, text: str) -> PhaseSettings:
    path = tmp_path / "govex.toml"
    path.write_text(f"principals_file = {str(PRINCIPALS_FILE)!r}\n{text}")
    return load_settings(str(path), environ={}).phase


# ------------------------------------------------------------ score rules


def _rule_rows() -> list[tuple[str, float, dict[str, float]]]:
    """Per rule: its weight changed (the score follows), and its threshold
    moved past an input that met the default (the rule stops holding)."""
    rows = []
    for phase, name, comparison in RULES:
        prefix = f"{phase}_{name}"
        key = "btc_dominance_delta_7d" if name == "dominance_delta_7d" else name
        threshold = getattr(DEFAULT, f"{prefix}_{comparison}")
        if comparison == "above":
            meets, moved = threshold + 0.02, threshold + 0.05
        else:  # below, or within (|input| below)
            meets, moved = threshold - 0.02, threshold - 0.05
        rows.append((f"{prefix}_weight", 0.9, {key: meets}))
        rows.append((f"{prefix}_{comparison}", moved, {key: meets}))
    return rows


RULE_ROWS = _rule_rows()


@pytest.mark.parametrize(("setting", "value", "inputs"), RULE_ROWS, ids=[r[0] for r in RULE_ROWS])
def test_each_score_rule_follows_its_settings(
    setting: str, value: float, inputs: dict[str, float], tmp_path: Path
) -> None:
    phase = Phase[setting.split("_", maxsplit=1)[0].upper()]
    changed = load(tmp_path, f"[phase]\n{setting} = {value}\n")
    weight = getattr(DEFAULT, setting.rsplit("_", 1)[0] + "_weight")
    # The input meets the default rule, whatever the other phases score.
    by_default = scores(inputs, DEFAULT)[phase]
    assert by_default >= weight - 1e-12
    if setting.endswith("_weight"):
        assert scores(inputs, changed)[phase] == pytest.approx(by_default - weight + value)
    else:
        assert scores(inputs, changed)[phase] == pytest.approx(by_default - weight)


# ------------------------------------------------------------ quality, confidence, persistence


def quality(settings: PhaseSettings, minutes_old: float = 0, **inputs: float) -> float:
    return read(
        SignalSet(T0 - timedelta(minutes=minutes_old), phase_inputs=inputs), T0, settings
    ).quality


def confidence(settings: PhaseSettings) -> float:
    return read(SignalSet(T0, phase_inputs={"rs_eth_7d": 1.1}), T0, settings).confidence


def changes_after(settings: PhaseSettings, sets: int, spacing_minutes: float) -> bool:
    """Whether ETH replaces BTC after ``sets`` ETH-led sets this far apart."""
    btc = {"btc_dominance_delta_7d": 1.0}
    state, _ = advance(PhaseState(), SignalSet(T0, phase_inputs=btc), T0, settings)
    changed = False
    for i in range(1, sets + 1):
        when = T0 + timedelta(minutes=i * spacing_minutes)
        state, changed = advance(
            state, SignalSet(when, phase_inputs={"rs_eth_7d": 1.2}), when, settings
        )
    return changed and state.current is Phase.ETH


Check = Callable[[PhaseSettings], object]
OTHER_ROWS: list[tuple[str, float, Check]] = [
    ("streak_needed", 2, lambda s: changes_after(s, 2, 30)),
    ("min_span_minutes", 10, lambda s: changes_after(s, 3, 10)),
    ("freshness_horizon_minutes", 60, lambda s: quality(s, 15)),
    ("coherent_rs_eth_min", 0.5, lambda s: quality(s, rs_eth_7d=0.4)),
    ("coherent_rs_eth_max", 2.0, lambda s: quality(s, rs_eth_7d=2.5)),
    ("coherent_dominance_min", 30, lambda s: quality(s, btc_dominance_pct=25)),
    ("coherent_dominance_max", 70, lambda s: quality(s, btc_dominance_pct=75)),
    ("incoherence_penalty", 0.2, lambda s: quality(s, rs_eth_7d=5)),
    ("confidence_boost", 1.0, confidence),
]


@pytest.mark.parametrize(("setting", "value", "check"), OTHER_ROWS, ids=[r[0] for r in OTHER_ROWS])
def test_quality_confidence_and_persistence_follow_their_settings(
    setting: str, value: float, check: Check, tmp_path: Path
) -> None:
    changed = load(tmp_path, f"[phase]\n{setting} = {value}\n")
    assert check(changed) != check(DEFAULT)


def test_every_phase_setting_has_a_row() -> None:
    names = {
        f"{f.name}_minutes" if f.type == "timedelta" else f.name for f in fields(PhaseSettings)
    }
    covered = [r[0] for r in RULE_ROWS] + [r[0] for r in OTHER_ROWS]
    assert sorted(covered) == sorted(set(covered))
    assert names == set(covered)


# ------------------------------------------------------------ start-up checks


def test_every_bad_number_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            "[policy]\nslow_cap = 0.9\nstale_after_minutes = 0\nprudent_exit = 0.5\n"
            "[phase]\nincoherence_penalty = 2\nstreak_needed = 0\n",
        )
    assert str(caught.value).splitlines() == [
        "policy.stale_after_minutes: 0 is outside [1, 10080]",
        "policy.slow_cap: 0.9 is outside [0.01, 0.5]",
        "policy: fresh_below < stale_after < error_after does not hold",
        "policy: prudent_exit < prudent_enter does not hold",
        "phase.streak_needed: 0 is outside [1, 1000]",
        "phase.incoherence_penalty: 2 is outside [0, 1]",
    ]
    printed = caught.value.lines("govex-server: configuration error: ").splitlines()
    assert len(printed) == 6
    assert all(p.startswith("govex-server: configuration error: ") for p in printed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[policy]\nslow_cap = 'high'\n", "policy.slow_cap: 'high' is not a float"),
        ("[policy]\nstale_after = 60\n", "unknown [policy] setting 'stale_after'"),
        ("[phase]\nstreak_needed = 2.5\n", "phase.streak_needed: 2.5 is not a int"),
        ("[policy]\nmin_trade_usd = 50\n", "unknown [policy] setting 'min_trade_usd'"),
    ],
)
def test_a_setting_of_the_wrong_kind_or_name_is_named(
    text: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load(tmp_path, text)
