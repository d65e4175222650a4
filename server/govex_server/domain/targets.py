"""Validation of target weights: the rules every plan's targets obey."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from govex_server.domain.errors import FieldViolation, invalid_argument
from govex_server.domain.execution.legs import DEFAULT_STABLES
from govex_server.domain.plans import Target

MAX_ASSETS = 200
SUM_TOLERANCE = 0.01
_ASSET_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,19}$")


def validate_targets(targets: Sequence[Target], field: str = "targets") -> tuple[Target, ...]:
    """Returns the targets unchanged when they are valid, else INVALID_ARGUMENT
    naming every offending field (``targets[3].weight_percent``...).

    Valid: 1 to 200 entries; each asset 1-20 characters of A-Z 0-9 . _ -,
    upper case, not repeated; each weight finite and in (0, 100]; the weights
    sum to 100 within 0.01; a hedge is not a stable (a stable hedges
    nothing: it is the other side of every leg).
    """
    violations: list[FieldViolation] = []
    if not targets:
        raise invalid_argument([FieldViolation(field, "at least one target is required")])
    if len(targets) > MAX_ASSETS:
        raise invalid_argument(
            [FieldViolation(field, f"{len(targets)} targets: at most {MAX_ASSETS} assets")]
        )
    seen: dict[str, int] = {}
    for i, target in enumerate(targets):
        where = f"{field}[{i}]"
        if not target.asset:
            violations.append(FieldViolation(f"{where}.asset", "required"))
        elif not _ASSET_RE.match(target.asset):
            violations.append(
                FieldViolation(
                    f"{where}.asset",
                    f"{target.asset[:40]!r}: 1-20 upper-case characters of A-Z 0-9 . _ -",
                )
            )
        elif target.asset in seen:
            violations.append(
                FieldViolation(
                    f"{where}.asset",
                    f"{target.asset} repeats {field}[{seen[target.asset]}]",
                )
            )
        else:
            seen[target.asset] = i
        if target.hedge and target.asset in DEFAULT_STABLES:
            violations.append(
                FieldViolation(
                    f"{where}.hedge", f"{target.asset} is a stable and cannot be a hedge"
                )
            )
        weight = target.weight_percent
        if not math.isfinite(weight):
            violations.append(FieldViolation(f"{where}.weight_percent", "must be a finite number"))
        elif not 0 < weight <= 100:
            violations.append(
                FieldViolation(f"{where}.weight_percent", f"{weight} is not in (0, 100]")
            )
    if not violations:
        total = math.fsum(t.weight_percent for t in targets)
        if abs(total - 100.0) > SUM_TOLERANCE:
            violations.append(
                FieldViolation(
                    field, f"weights sum to {total:.6g}, not 100 (tolerance {SUM_TOLERANCE})"
                )
            )
    if violations:
        raise invalid_argument(violations)
    return tuple(targets)
