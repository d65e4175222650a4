"""Every number of the policy derivation is a setting: one table per step of
the reference algorithm, each row changing one number in a settings file and
showing that the derivation follows it (the step's explanation line appears
with the changed number, and not with the default).

A meta-test fails for any setting without a row, so a new number cannot be
added without showing that the derivation reads it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from govex_server.config import load_settings
from govex_server.domain.clock import ManualClock
from govex_server.domain.freezes import Freeze, FreezeType
from govex_server.domain.phase import PhaseSettings
from govex_server.domain.policy import Derivation, Freshness, PolicyState, derive
from govex_server.domain.policy_settings import PolicySettings
from govex_server.domain.signals import SignalSet
from tests.support import PRINCIPALS_FILE

T0 = ManualClock().now()


def sig(
    c: float | None = 0.1,
    f: float | None = 0.7,
    minutes_old: float = 1,
    b: float | None = None,
    vol: float | None = None,
) -> SignalSet:
    return SignalSet(
        as_of=T0 - timedelta(minutes=minutes_old),
        contradiction_index=c,
        confidence=f,
        blended_score=b,
        volatility={} if vol is None else {"BTC": vol},
    )


def frozen(kind: FreezeType) -> list[Freeze]:
    return [Freeze("01HZZZZZZZZZZZZZZZZZZZZZZZ", kind, "t", "op", T0, T0 + timedelta(hours=1))]


FRESH = PolicyState(freshness=Freshness.FRESH)
PRUDENT = PolicyState(
    freshness=Freshness.FRESH, prudent=True, prudent_changed=T0 - timedelta(hours=1)
)
JUST_CHANGED = PolicyState(freshness=Freshness.FRESH, prudent_changed=T0 - timedelta(minutes=10))
AT_10 = PolicyState(freshness=Freshness.FRESH, smoothed_cap=0.10)


@dataclass(frozen=True)
class Row:
    """One number changed: ``setting = value`` in the file, the inputs that
    make the step read it, and the explanation line the change produces."""

    setting: str
    value: float
    line: str
    signals: SignalSet | None = None
    state: PolicyState = FRESH
    freezes: tuple[Freeze, ...] = ()


def row(
    setting: str,
    value: float,
    line: str,
    signals: SignalSet | None = None,
    state: PolicyState = FRESH,
    freezes: list[Freeze] | None = None,
) -> Row:
    return Row(setting, value, line, signals, state, tuple(freezes or ()))


NORMAL = sig()  # c 0.10, f 0.70: NORMAL, cap 8%, ramp 12 h
DISTRESS = sig(c=0.75)  # SLOW, cap 0.12 - 0.09 * 0.75 = 5.25%, ramp 48 h
CONFIDENT = sig(f=0.9)  # AGGRESSIVE, cap 12%, ramp 6 h
UNCONVINCED = sig(f=0.5)  # SLOW, cap 7%, ramp 24 h

STEPS: dict[str, list[Row]] = {
    "1": [
        row("no_signals_cap", 0.05, "step 1: no signals: SLOW, cap 5.00%"),
        row("no_signals_ramp_hours", 30, "step 1: no signals: SLOW, cap 3.00%, ramp 30h"),
    ],
    "2": [
        row("stale_after_minutes", 40, "step 2: signals STALE (age 45 min", sig(minutes_old=45)),
        row(
            "fresh_below_minutes",
            10,
            "step 2: signals STALE (age 15 min, was NONE)",
            sig(minutes_old=15),
            PolicyState(),
        ),
        row("error_after_minutes", 90, "step 2: signals ERROR (age 100 min", sig(minutes_old=100)),
        row(
            "missing_contradiction",
            0.75,
            "counted as contradiction 0.75, confidence 0.4",
            sig(c=None),
        ),
        row("missing_confidence", 0.9, "counted as contradiction 0.5, confidence 0.9", sig(f=None)),
    ],
    "3": [
        row(
            "prudent_enter", 0.42, "step 3: prudent state entered (contradiction 0.43)", sig(c=0.43)
        ),
        row(
            "prudent_exit",
            0.42,
            "step 3: prudent state left (contradiction 0.41)",
            sig(c=0.41),
            PRUDENT,
        ),
        row(
            "prudent_min_dwell_minutes",
            5,
            "step 3: prudent state entered (contradiction 0.50)",
            sig(c=0.5),
            JUST_CHANGED,
        ),
    ],
    "4": [
        row(
            "distress_contradiction",
            0.5,
            "step 4: high contradiction or low confidence (c=0.60",
            sig(c=0.6),
        ),
        row(
            "distress_confidence",
            0.5,
            "step 4: high contradiction or low confidence (c=0.10, f=0.45)",
            sig(f=0.45),
        ),
        row("freeze_contradiction", 0.75, "(c=0.78, f=0.70): FREEZE", sig(c=0.78)),
        row("distress_cap_base", 0.2, "SLOW, cap 13.25%, ramp 48h", DISTRESS),
        row("distress_cap_slope", 0.05, "SLOW, cap 8.25%, ramp 48h", DISTRESS),
        row("distress_cap_floor", 0.06, "FREEZE, cap 6.00%", sig(c=0.9)),
        row("distress_ramp_hours", 36, "SLOW, cap 5.25%, ramp 36h", DISTRESS),
        row("slow_confidence", 0.5, "step 4: NORMAL, cap 8.00%", sig(f=0.55)),
        row("slow_cap", 0.05, "step 4: confidence 0.50 < 0.60: SLOW, cap 5.00%", UNCONVINCED),
        row("slow_ramp_hours", 20, "SLOW, cap 7.00%, ramp 20h", UNCONVINCED),
        row(
            "aggressive_confidence",
            0.65,
            "step 4: confidence 0.70, contradiction 0.10: AGGRESSIVE",
            NORMAL,
        ),
        row("aggressive_contradiction", 0.3, "contradiction 0.25: AGGRESSIVE", sig(c=0.25, f=0.9)),
        row("aggressive_cap", 0.15, "AGGRESSIVE, cap 15.00%", CONFIDENT),
        row("aggressive_ramp_hours", 4, "AGGRESSIVE, cap 12.00%, ramp 4h", CONFIDENT),
        row("normal_cap", 0.09, "step 4: NORMAL, cap 9.00%", NORMAL),
        row("normal_ramp_hours", 10, "step 4: NORMAL, cap 8.00%, ramp 10h", NORMAL),
    ],
    "5": [
        row(
            "aggressive_min_blended", 80, "step 5: blended score 75 < 80: NORMAL", sig(f=0.9, b=75)
        ),
    ],
    "6": [
        row("initial_cap", 0.10, "step 6: cap smoothed from 10.00% towards 8.00%: 9.60%", NORMAL),
        row(
            "dead_zone",
            0.05,
            "step 6: cap kept at 10.00%: raw 8.00% is in the dead zone",
            NORMAL,
            AT_10,
        ),
        row(
            "smoothing", 0.5, "step 6: cap smoothed from 10.00% towards 8.00%: 9.00%", NORMAL, AT_10
        ),
        row(
            "max_step",
            0.002,
            "step 6: cap smoothed from 10.00% towards 8.00%: 9.80%",
            NORMAL,
            AT_10,
        ),
    ],
    "7": [
        row("stale_cap", 0.05, "step 7: signals STALE: cap <= 5.00%", sig(minutes_old=70)),
        row("error_cap", 0.04, "step 7: signals ERROR: cap <= 4.00%", sig(minutes_old=130)),
        row(
            "full_freeze_cap",
            0.02,
            "FULL_FREEZE: cap <= 2.00%",
            NORMAL,
            FRESH,
            frozen(FreezeType.FULL_FREEZE),
        ),
        row(
            "full_freeze_ramp_hours",
            2,
            "FULL_FREEZE: cap <= 1.00%, ramp <= 2h",
            NORMAL,
            FRESH,
            frozen(FreezeType.FULL_FREEZE),
        ),
        row(
            "s3_freeze_cap",
            0.02,
            "S3_ALERT_FREEZE: cap <= 2.00%",
            NORMAL,
            FRESH,
            frozen(FreezeType.S3_ALERT_FREEZE),
        ),
        row(
            "s3_freeze_ramp_hours",
            3,
            "S3_ALERT_FREEZE: cap <= 3.00%, ramp <= 3h",
            NORMAL,
            FRESH,
            frozen(FreezeType.S3_ALERT_FREEZE),
        ),
        row(
            "error_freeze_cap",
            0.04,
            "ERROR_FREEZE: cap <= 4.00%",
            NORMAL,
            FRESH,
            frozen(FreezeType.ERROR_FREEZE),
        ),
        row(
            "error_freeze_ramp_hours",
            8,
            "ERROR_FREEZE: cap <= 5.00%, ramp <= 8h",
            NORMAL,
            FRESH,
            frozen(FreezeType.ERROR_FREEZE),
        ),
    ],
    "9": [
        row("default_volatility", 0.5, "step 9: no volatility given: 0.5 assumed", NORMAL),
        row("no_trade_base", 0.02, "step 9: no-trade zone 2.75%", NORMAL),
        row("no_trade_per_volatility", 0.1, "step 9: no-trade zone 2.50%", NORMAL),
        row("no_trade_min", 0.03, "step 9: no-trade zone 3.00%", NORMAL),
        row("no_trade_max", 0.015, "step 9: no-trade zone 1.50%", NORMAL),
        row("cost_base_bps", 20, "cost 35 bps", NORMAL),
        row("cost_per_volatility_bps", 200, "cost 45 bps", NORMAL),
        row("cost_max_bps", 25, "cost 25 bps", NORMAL),
    ],
    "10": [
        row(
            "slippage_aggressive_bps",
            120,
            "step 10: slippage limit 128 bps (AGGRESSIVE 120",
            CONFIDENT,
        ),
        row("slippage_normal_bps", 60, "step 10: slippage limit 68 bps (NORMAL 60", NORMAL),
        row("slippage_slow_bps", 40, "step 10: slippage limit 48 bps (SLOW 40", UNCONVINCED),
        row("slippage_freeze_bps", 10, "step 10: slippage limit 18 bps (FREEZE 10", sig(c=0.9)),
        row(
            "slippage_per_volatility_bps",
            100,
            "step 10: slippage limit 65 bps (NORMAL 50 + 100 x 0.15)",
            NORMAL,
        ),
        row("min_trade_usd", 250, "minimum trade 250", NORMAL),
    ],
}
ROWS = [(step, r) for step, rows in STEPS.items() for r in rows]


def settings_file(tmp_path: Path, setting: str, value: float) -> PolicySettings:
    """The policy settings as the server loads them from a file changing one number."""
    path = tmp_path / "govex.toml"
    # min_trade_usd is a top-level setting (also GOVEX_MIN_TRADE_USD).
    table = "" if setting == "min_trade_usd" else "[policy]\n"
    path.write_text(f"principals_file = {str(PRINCIPALS_FILE)!r}\n{table}{setting} = {value}\n")
    return load_settings(str(path), environ={}).policy_settings()


def explanation(r: Row, settings: PolicySettings, now: datetime = T0) -> str:
    d: Derivation = derive(r.signals, r.state, r.freezes, now, settings, new_set=True)
    return " | ".join(d.policy.explanation)


@pytest.mark.parametrize(("step", "r"), ROWS, ids=[f"step{s}-{r.setting}" for s, r in ROWS])
def test_the_step_follows_its_setting(step: str, r: Row, tmp_path: Path) -> None:
    changed = explanation(r, settings_file(tmp_path, r.setting, r.value))
    default = explanation(r, PolicySettings())
    assert f"step {step}:" in changed
    assert r.line in changed, (r.line, changed)
    # The default's explanation lacks the line: the number, not the inputs,
    # made the difference.
    assert r.line not in default, (r.line, default)


def test_every_policy_setting_has_a_row() -> None:
    names = {
        f"{f.name}_minutes" if f.type == "timedelta" else f.name for f in fields(PolicySettings)
    }
    covered = [r.setting for _, r in ROWS]
    assert sorted(covered) == sorted(set(covered)), "a setting has two rows"
    assert names == set(covered)


@pytest.mark.parametrize("kind", [PolicySettings, PhaseSettings])
def test_every_setting_is_documented_with_its_default_and_range(kind: type) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "policy.md").read_text()
    for f in fields(kind):
        name, default = f.name, f.default
        if isinstance(default, timedelta):
            name, default = f"{name}_minutes", default.total_seconds() / 60
        low, high = f.metadata["range"]
        line = f"| `{name}` | {default:g} | {low:g} to {high:g} | {f.metadata['step']} |"
        assert line in doc, line
