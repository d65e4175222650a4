"""What the console's forms say, as the services' arguments (pure). A form
that cannot be read is INVALID_ARGUMENT naming the field, as the API's
would be; the services then check the values as for any other caller."""

from __future__ import annotations

import math
from datetime import timedelta

from govex_server.domain.errors import Category, GovexError
from govex_server.domain.freezes import FreezeType
from govex_server.domain.plans import Target


def _bad(field: str, why: str) -> GovexError:
    return GovexError(Category.INVALID_ARGUMENT, "BAD_FORM", f"{field}: {why}")


def parse_targets(text: str) -> list[Target]:
    """One target per line: ``ASSET PERCENT``, ``hedge`` after it for a
    hedge target (``BTC 50``, ``BTC-PERP 5 hedge``); blank lines ignored."""
    targets = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.replace(",", " ").replace("%", " ").split()
        if not words:
            continue
        hedge = len(words) == 3 and words[2].lower() == "hedge"
        if len(words) != 2 and not hedge:
            raise _bad("targets", f"line {number} is not 'ASSET PERCENT' ({line.strip()!r})")
        try:
            weight = float(words[1])
        except ValueError:
            raise _bad("targets", f"line {number}: {words[1]!r} is not a percent") from None
        if not math.isfinite(weight):
            raise _bad("targets", f"line {number}: {words[1]!r} is not a percent")
        targets.append(Target(words[0].upper(), weight, hedge))
    if not targets:
        raise _bad("targets", "give at least one line 'ASSET PERCENT'")
    return targets


def parse_freeze(kind: str, ttl_minutes: str) -> tuple[FreezeType, timedelta]:
    """The freeze form's type and time to live in minutes."""
    try:
        freeze_type = FreezeType(kind)
    except ValueError:
        raise _bad("type", f"choose one of {', '.join(t.value for t in FreezeType)}") from None
    try:
        minutes = float(ttl_minutes)
    except ValueError:
        raise _bad("ttl_minutes", f"{ttl_minutes!r} is not a number of minutes") from None
    # Within a few decades, so timedelta cannot overflow; the freeze service
    # then holds it to 1 minute .. 7 days as for the API.
    if not math.isfinite(minutes) or abs(minutes) > 1e7:
        raise _bad("ttl_minutes", f"{ttl_minutes!r} is not a time to live in minutes")
    return freeze_type, timedelta(minutes=minutes)
