"""How long a failed execution runner waits before it runs again.

A runner fails when its exchange (or store) does: a price look-up times out,
the account's balances cannot be read. It is restarted forever, never left
dead until the next server start, and the waits grow exponentially with
jitter (so that many runners failing on one exchange do not retry in step),
capped so that a long outage is still retried every minute or so."""

from __future__ import annotations

from datetime import timedelta

BASE = timedelta(seconds=1)
CAP = timedelta(seconds=60)
# A runner that ran this long before failing is counted as healthy again: its
# next wait starts from BASE, not from where an outage of last week left it.
HEALTHY_AFTER = timedelta(minutes=5)


def failures_in_a_row(
    previous: int, ran_for: timedelta, healthy_after: timedelta = HEALTHY_AFTER
) -> int:
    """The count of failures in a row after one more, given how long the
    runner ran since its last start."""
    return 1 if ran_for >= healthy_after else previous + 1


def restart_delay(
    failures: int, jitter: float, base: timedelta = BASE, cap: timedelta = CAP
) -> timedelta:
    """The wait after the ``failures``-th failure in a row (1, 2, ...);
    ``jitter`` in [0, 1) spreads it over [half, all] of the exponential step."""
    if failures < 1:
        raise ValueError("failures starts at 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter is in [0, 1)")
    step: timedelta = min(cap, base * (2 ** min(failures - 1, 30)))
    return step * (0.5 + jitter / 2)
